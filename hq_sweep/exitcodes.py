"""Worker exit codes: why a worker left, so a launcher knows whether to replace it."""

from __future__ import annotations

OK = 0  # the sweep ended
ERROR = 1  # a crash (Redis gone, an unexpected error): worth restarting
UNUSABLE = 3  # cannot start: the user's code fails to load or setup() raises, or no sweep
DRAINED = 10  # first SIGTERM: finished its current trial, then left
REQUEUED = 11  # second SIGTERM (or grace period over): gave its trial back and left at once
WALLTIME = 12  # SIGUSR1 (Slurm's --signal warning): stopped taking trials, finished the current
RECYCLE = 13  # max_trials_per_worker or the memory limit reached: replace me
HUNG = 14  # a trial overran trial_timeout and could not be interrupted: replace me
COUNTED = 15  # ran the trials `--count` asked for (like `wandb agent --count`): done
ENDED = 16  # the sweep had already finished when the worker came: nothing to run
LOST_SERVER = 17  # the server stayed unreachable for the whole patience ($HQ_SWEEP_PATIENCE)

# Exits a launcher answers by starting a fresh worker (setup() runs again there).
REPLACE = frozenset({RECYCLE, HUNG})
# Exits that mean "stop": a launcher must not restart these.
DELIBERATE = frozenset({OK, DRAINED, REQUEUED, WALLTIME, COUNTED})
# Restarting these would only fail again the same way (a replacement for LOST_SERVER would
# wait out the same patience for a server that is gone).
NO_RESTART = DELIBERATE | {UNUSABLE, ENDED, LOST_SERVER}

NAMES = {
    OK: "sweep ended",
    ERROR: "error",
    UNUSABLE: "cannot start (user code or sweep unusable: see its log)",
    DRAINED: "drained after SIGTERM",
    REQUEUED: "requeued its trial after a second SIGTERM",
    WALLTIME: "drained after SIGUSR1 (walltime warning)",
    RECYCLE: "recycled (trial count or memory limit)",
    HUNG: "replaced after an uninterruptible trial timeout",
    COUNTED: "ran its --count trials",
    ENDED: "the sweep had already finished",
    LOST_SERVER: "the server stayed unreachable",
}


def describe(code: int | None) -> str:
    if code is None:
        return "running"
    if code < 0:
        return f"killed by signal {-code}"
    return NAMES.get(code, f"exit code {code}")
