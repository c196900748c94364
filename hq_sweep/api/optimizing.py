"""`hq_sweep.optimize`: Optuna's `study.optimize` on local warm workers, returning the study."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import optuna

from hq_sweep.api.objective import InvalidArgument, ObjectiveArg, resolve_objective
from hq_sweep.api.session import (
    Plan,
    refuse_inside_a_worker,
    register,
    run_sweep,
    sweep_server,
)
from hq_sweep.api.sweep_spec import (
    Direction,
    build_spec,
    goals,
    pruner_for,
    pruner_name,
    value_names,
)
from hq_sweep.controller.strategy.optuna_ask_tell import OptunaAskTell
from hq_sweep.queue.client import connect
from hq_sweep.results.optuna_study import Storage, check_new_study, study_of_sweep

__all__ = ["OptimizeInterrupted", "optimize"]


class OptimizeInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped `hq_sweep.optimize`; `study` holds the trials finished by then."""

    def __init__(self, study: optuna.Study) -> None:
        super().__init__(f"interrupted after {len(study.trials)} finished trials")
        self.study = study


def optimize(
    objective: ObjectiveArg,
    n_trials: int | None = None,
    timeout: float | None = None,
    *,
    workers: int = 2,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    direction: Direction | None = None,
    directions: Sequence[Direction] | None = None,
    metric_names: Sequence[str] | None = None,
    study_name: str | None = None,
    storage: Storage | None = None,
    redis_url: str | None = None,
    show_progress_bar: bool = False,
) -> optuna.Study:
    """Optimize `objective` on local warm workers, as `optuna.create_study(...).optimize(...)`
    would in one process; return the study.

    Args:
        objective: `objective(trial)` as for Optuna (`trial.suggest_*`, `report`,
            `should_prune`, `set_user_attr`; return a float, or a sequence for several
            directions). Workers are processes that import it, so give it as
            "path/to/obj.py:function", "package.module:function", or the function itself if
            it is defined at the top of an importable .py file (a notebook cell's or the
            prompt's is refused: put it in a file). A module that calls `optimize` when run
            must do so under `if __name__ == "__main__":`.
        n_trials: trials to run in all (failed and pruned ones count, as in Optuna). None:
            until `timeout`, or Ctrl-C.
        timeout: seconds after which no trial starts; running ones finish (Optuna's).
        workers: local worker processes, each importing the objective once and running
            trial after trial; their output goes to logs/<sweep>/worker-N.log in hq-sweep's
            state directory (`$HQ_SWEEP_STATE_DIR`, else ~/.local/state/hq-sweep).
        sampler: any Optuna sampler, run by the controller in this process. None: TPE as
            hq-sweep sets it up for parallel workers (multivariate, constant liar).
        pruner: any Optuna pruner, fed every worker's reports. None: MedianPruner (Optuna's);
            none with several directions (Optuna prunes single-objective studies only).
        direction: "minimize" (default) or "maximize" (or a StudyDirection).
        directions: one per objective value, for a multi-objective study (not with
            `direction`).
        metric_names: a name per value (then set on the study); also the keys an objective
            may return in a dict. Default "value", or "value_0", "value_1"...
        study_name: the returned study's name (default: the objective's function name), and
            the sweep's id (on a shared server -2, -3... when taken).
        storage: an Optuna storage (URL such as "sqlite:///study.db", or a BaseStorage) to
            create the study in; refused before anything runs when it already holds a study
            of that name. None: in memory.
        redis_url: an existing hq-sweep server (`hq-sweep server url`); the sweep stays there
            for `hq-sweep status`/`best`/`export`. None: a private server, removed at the end.
        show_progress_bar: a bar on stderr (rich; a plain line every 10 s without a terminal).

    Returns:
        A new `optuna.Study` (the sampler and pruner it ran with) holding every finished trial
        as Optuna would: state COMPLETE/PRUNED/FAIL, values, params with their distributions,
        intermediate values, user_attrs, start and end times, and system_attrs
        "hq_sweep:number" (the sweep's trial number), "hq_sweep:attempt", "hq_sweep:worker",
        "hq_sweep:reason" (why it failed or was pruned). Trials withdrawn before they ran
        (at a timeout) are left out.

    A trial whose objective raises (or returns NaN) is FAIL and the sweep goes on, as with
    Optuna's `catch=(Exception,)`. Ctrl-C stops the workers as `hq-sweep run` does (a
    running trial has 10 s to finish, then is abandoned) and raises `OptimizeInterrupted`, a
    KeyboardInterrupt whose `study` holds the trials finished by then (also written to
    `storage`; with `redis_url` the sweep stays there, unfinished). Workers that cannot
    start (the objective's module fails to import) raise `WorkersCannotStart`, saying why.
    """
    refuse_inside_a_worker()
    ref = resolve_objective(objective)
    goal_list = goals(direction, directions)
    name = study_name or ref.function
    pruner = pruner_for(pruner, len(goal_list))
    spec = build_spec(ref, name, n_trials, goal_list, value_names(metric_names, len(goal_list)),
                      default_sampler=sampler is None, pruner=pruner_name(pruner))
    plan = Plan(spec, ref.base_dir, _workers(workers), _timeout(timeout), show_progress_bar)
    if storage is not None:
        check_new_study(storage, name)
    with _quiet_optuna(), sweep_server(redis_url) as url:
        return _optimize(url, plan, name, sampler, pruner, storage)


def _optimize(url: str, plan: Plan, name: str, sampler: optuna.samplers.BaseSampler | None,
              pruner: optuna.pruners.BasePruner, storage: Storage | None) -> optuna.Study:
    connection = connect(url)
    try:
        queue = register(connection, plan)
        strategy = OptunaAskTell(plan.spec, queue.sweep_id, sampler=sampler, pruner=pruner)

        def collect() -> optuna.Study:
            return study_of_sweep(queue, plan.spec, strategy.space, storage=storage,
                                  study_name=name, sampler=strategy.study.sampler,
                                  pruner=strategy.study.pruner)

        try:
            run_sweep(url, queue, plan, strategy)
        except KeyboardInterrupt as exc:
            raise OptimizeInterrupted(collect()) from exc
        return collect()
    finally:
        connection.close()


def _workers(workers: int) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidArgument(f"workers: must be a whole number, at least 1 (got {workers!r})")
    return workers


def _timeout(timeout: float | None) -> float | None:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                or not math.isfinite(timeout) or timeout <= 0):
        raise InvalidArgument(f"timeout: must be a positive number of seconds (got {timeout!r})")
    return timeout


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's INFO lines ("A new study created...") are the internals' here."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)
