"""When a report should wait for the controller's prune decision on its own step.

Prune decisions are made by the controller, asynchronously. A worker that does not wait
learns a decision with its next report, so a trial pruned at step s trains step s+1 for
nothing. Waiting costs a round trip through the controller (about a millisecond here), paid
on every report that waits, pruned or not. So a worker waits where the expected saving beats
the expected cost:

    P(pruned at this step) x step time  >  expected wait

P is learnt per step from this worker's own trials (with a Laplace prior, so a new step is
waited on a few times before it is judged), and the expected wait from the waits so far. For
ASHA or Hyperband this finds the rungs by itself; for a pruner that never prunes it stops
waiting after a few trials. The wait is also bounded by a share of the step, so a slow
controller can never cost more than that share of training, and tiny steps never wait.
"""

from __future__ import annotations

from collections import Counter

# A wait may take at most this share of the step it ends (capped): the worst-case cost.
WAIT_SHARE = 0.25
WAIT_CAP_S = 2.0
MIN_WAIT_S = 0.001  # below a round trip or two, a wait cannot be answered in time
_PRIOR_WAIT_S = 0.002  # expected wait before any was measured
_SMOOTHING = 0.2  # weight of the latest wait in the running estimate
_MAX_STEPS_TRACKED = 100_000  # objectives reporting per iteration: keep the tables bounded


class DecisionWaits:
    """One worker's running estimate of where waiting for prune decisions pays off."""

    def __init__(self) -> None:
        self.reports: Counter[int] = Counter()
        self.prunes: Counter[int] = Counter()
        self.expected_wait_s = _PRIOR_WAIT_S
        self.waits = 0
        self.answered = 0

    def budget(self, step: int, step_s: float) -> float:
        """Seconds this report may wait for its decision; 0 means do not wait."""
        bound = min(WAIT_SHARE * step_s, WAIT_CAP_S)
        if bound < MIN_WAIT_S:
            return 0.0
        prune_odds = (self.prunes[step] + 1) / (self.reports[step] + 2)
        return bound if prune_odds * step_s > self.expected_wait_s else 0.0

    def observe(self, step: int, pruned: bool) -> None:
        """A report at `step` came back (pruned=False), or a prune decision was made on
        `step` (pruned=True; learnt late, it belongs to the step it was decided on)."""
        if len(self.reports) >= _MAX_STEPS_TRACKED and step not in self.reports:
            self.reports.clear()
            self.prunes.clear()
        if pruned:
            self.prunes[step] += 1
        else:
            self.reports[step] += 1

    def waited(self, seconds: float, answered: bool) -> None:
        """A wait took `seconds`; unanswered waits count at full length (the controller was
        too slow), which makes later waits rarer."""
        self.waits += 1
        self.answered += answered
        self.expected_wait_s += _SMOOTHING * (seconds - self.expected_wait_s)
