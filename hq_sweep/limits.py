"""Size limits: how much one trial, parameter, report or message may take in Redis.

Everything hq-sweep reads from Redis is bounded, so a runaway objective or a hostile client
cannot fill the server or wedge a worker or the controller. A trial over a limit fails
with a reason saying which limit (the worker carries on); a message over one is quarantined
unread. README's "Hostile input" lists them.
"""

from __future__ import annotations

MIB = 2**20

# A trial's result as its record stores it: metrics and user_attrs, values, reason (JSON).
RECORD_BYTES = 16 * MIB
# One parameter value as JSON (a define-by-run `suggest_categorical`'s choices included).
PARAM_BYTES = 1 * MIB
# A parameter's or metric's name, in characters.
NAME_CHARS = 1000
# Intermediate values a trial may report (distinct calls); later ones are not recorded.
REPORTS_PER_TRIAL = 100_000
# A failure reason, in characters (a traceback keeps its end: where it was raised).
REASON_CHARS = 4000
# One message read from a list or hash (outcome, report, suggest, decision, heartbeat).
MESSAGE_BYTES = 2 * MIB
# An rq job's `data` (hq-sweep's are ~100 bytes: a function name, a sweep id, a number).
RQ_JOB_BYTES = 64 * 1024
# Quarantine: entries kept for a look (the count goes on), and the raw bytes kept of each.
QUARANTINE_KEPT = 1000
QUARANTINE_RAW_CHARS = 1000


def mib(size: int) -> str:
    """A size as users read it: `100.0 MB`."""
    return f"{size / 1e6:.1f} MB"
