"""The warm worker: one process that loads the user's code once and runs trial after trial.

Owns the process's life from connecting to leaving (`lifecycle`), the rq-driven warm loop with
its heartbeat and signals (`warm_loop`), running one trial and reporting its values
(`executor`), the `Trial` object objectives receive, loading user code, command mode (a
program per trial, as W&B's agent runs it), the walltime guard and prune-decision waits. May
import `spec`, the shared transport (`queue`), `messages`, `env`, `exitcodes` and `errors`;
never `controller` (Optuna only for `TrialPruned`), `cli` or `launchers`.
"""
