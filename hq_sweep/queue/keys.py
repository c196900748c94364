"""The key schema: every key hq-sweep keeps in Redis, and the one place that names them.

Every value is JSON or plain text, never pickle (a pickle in a shared Redis is code execution
for anyone who can write to it).

    hqs:sweeps                  ZSET    sweep id -> created (unix seconds)
    hqs:s:{id}                  HASH    sweep meta: spec (JSON), spec_hash, state (running|
                                        stopping|finished, see below), stop (stop|cancel: a
                                        user's request), created, next (trials allocated),
                                        best (JSON), finished_reason, finished_at, told,
                                        study_trials,
                                        stalled (why the last worker could not start; cleared
                                        when one starts)
    hqs:s:{id}:t:{n}            HASH    trial record (read and written through the one codec,
                                        `messages.TrialRecord`): state, attempt, params (JSON),
                                        queued_at, worker, started_at (claimed), lease,
                                        ended_at, duration (objective's run time, s), values
                                        (JSON), reason, metrics (JSON), decision (flagged by
                                        the controller: `messages.Decision` JSON), released
                                        (attempts handed back by stopping workers),
                                        distributions (JSON: define-by-run parameter ->
                                        Optuna's distribution_to_json text; suggest.lua
                                        writes it with params), cancel
                                        (why `hq-sweep cancel` flagged it to be abandoned:
                                        report.lua answers a cancel decision, renew.lua says
                                        so, finish.lua records it cancelled). claim.lua
                                        and reap.lua hand whole records back; finish.lua sets
                                        whichever finishing fields it is given
    hqs:s:{id}:iv:{n}           HASH    step -> intermediate value (exact decimal text)
    hqs:s:{id}:dec:{n}          LIST    the controller's latest answer to a report the worker
                                        waits on (`messages.Decision` JSON); expires
    hqs:s:{id}:suggests         LIST    SuggestRequest JSON, worker -> controller (a define-by-
                                        run `trial.suggest_*` of a name the trial lacks)
    hqs:s:{id}:sug:{n}:{a}      LIST    the controller's SuggestAnswer JSON to attempt a of
                                        trial n (suggest.lua); expires
    hqs:s:{id}:counts           HASH    trial state -> number of trials in it (kept, not scanned),
                                        plus requeued (lease expiries and hand-backs)
    hqs:s:{id}:ready            LIST    numbers of queued trials, taken by workers' claims
    hqs:s:{id}:leases           ZSET    running trial number -> lease deadline (ms, server clock)
    hqs:s:{id}:reasons          HASH    failure kind -> number of failed trials
    hqs:s:{id}:failure_lines    HASH    failure kind -> its latest failure in one line
                                        (`Type: message (file.py:N)`), shown beside the count
    hqs:s:{id}:cost             HASH    running cost totals, kept by finish.lua: trial_s, gpu_s
                                        (duration x gpus), rss_peak_mb, gpu_mem_peak_mb (max)
    hqs:s:{id}:results          LIST    TrialOutcome JSON, worker -> controller (finish.lua;
                                        trials failed by reap.lua go back in its reply instead)
    hqs:s:{id}:reports          LIST    Report JSON, worker -> controller (pruning)
    hqs:s:{id}:lock             STRING  token of the controller holding the sweep (PX lease)
    hqs:s:{id}:workers          HASH    worker name -> heartbeat JSON (node, gpu, rank, pid,
                                        seen, trial: {number, since} it runs now or null,
                                        done: trials it has run)
    hqs:s:{id}:quarantine       LIST    malformed data found in our keys and rq's, kept for a
                                        look: {where, error, raw (truncated), at} JSON, the
                                        newest 1000 (`queue.quarantine`)
    hqs:s:{id}:quarantined      STRING  how many items were quarantined, all told
    rq:queue:hqs-{id}, rq:job:* rq's own keys: jobs that send a worker to take ready trials

State changes that must be atomic are Lua scripts in `lua/` (each documents its keys).

A sweep's state: `running` from creation (and again when a controller resumes it); `stopping`
once `hq-sweep stop`/`cancel` asked it to end (stop_sweep.lua: claims are refused, queued
trials withdrawn as cancelled, with `cancel` running ones flagged); `finished` when its
controller ended it (finished_reason says why: run_cap, a target, "stopped by user
(`hq-sweep stop`)", "cancelled by user (`hq-sweep cancel`)"), or when stop_sweep.lua found
nothing running and no controller. Workers leave any sweep that is not `running`. `hq-sweep
list` shows a finished sweep with `stop` set as stopped or cancelled. `hq-sweep delete`
removes every key above of one sweep (SCAN on its prefix, rq's keys for its queue).
"""

from __future__ import annotations

from dataclasses import dataclass

SWEEPS = "hqs:sweeps"


@dataclass(frozen=True, slots=True)
class SweepKeys:
    """The names of one sweep's keys."""

    sweep_id: str

    @property
    def meta(self) -> str:
        return f"hqs:s:{self.sweep_id}"

    @property
    def trial_prefix(self) -> str:
        """Trial records are `trial_prefix + number` (Lua scripts build them from this)."""
        return f"{self.meta}:t:"

    def trial(self, number: int) -> str:
        return f"{self.meta}:t:{number}"

    def intermediate(self, number: int) -> str:
        return f"{self.meta}:iv:{number}"

    def decision(self, number: int) -> str:
        return f"{self.meta}:dec:{number}"

    def suggest_answer(self, number: int, attempt: int) -> str:
        return f"{self.meta}:sug:{number}:{attempt}"

    def part(self, name: str) -> str:
        """One of the sweep-wide keys: counts, ready, leases, reasons, failure_lines, results,
        reports, suggests, lock, workers, quarantine, cost."""
        return f"{self.meta}:{name}"

    @property
    def rq_queue(self) -> str:
        return f"hqs-{self.sweep_id}"
