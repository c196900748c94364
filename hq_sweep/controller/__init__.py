"""The controller: the one process that owns a sweep's study and keeps workers fed.

Owns the loop that holds the sweep's lock, reads results and reports and tops the queue up
(`loop`), the strategy interface that loop drives and its Optuna ask/tell implementation
(`strategy/`), the search space as Optuna distributions (`space`), samplers, pruners and
directions, the rebuild of a study from the trial records, and W&B's hyperband rule. May
import `spec`, the shared transport (`queue`), `messages` and `errors`; never `worker`, `cli`
or `launchers`.
"""
