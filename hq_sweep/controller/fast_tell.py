"""`study.tell` without the deep copy of the trial it returns.

Optuna's public `Study.tell` stores the outcome, then deep-copies the whole FrozenTrial to
return it; the controller never reads that copy, and the copy was most of what a tell cost
(about 70 of 75 µs per no-op trial here). The storing half is Optuna's own internal
`_tell_with_warning`, which `Study.tell` calls; if a future Optuna moves it, the public
call is used and only speed is lost.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.trial import TrialState

try:
    from optuna.study._tell import _tell_with_warning
except ImportError:  # pragma: no cover - depends on the installed Optuna
    _tell_with_warning = None  # type: ignore[assignment]


def tell(study: optuna.Study, trial: optuna.trial.Trial, values: Sequence[float] | None,
         state: TrialState) -> None:
    """What `study.tell(trial, values, state=state)` does, minus building its return value."""
    if _tell_with_warning is None:  # pragma: no cover
        study.tell(trial, values, state=state)
        return
    _tell_with_warning(study=study, trial=trial, value_or_values=values, state=state)
