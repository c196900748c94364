"""The warm worker: one process that loads the user's code once and runs trial after trial.

Owns the process's life from connecting to leaving (`lifecycle`), the rq-driven warm loop and
its signals (`warm_loop`), the lease-keeping `heartbeat`, running one trial (`executor`) and
sending its values (`reports`, `decision_wait`), the `Trial` object objectives receive and its
define-by-run `suggest_*` (`suggest`: the controller samples), loading user code, command
mode (a program per trial, as W&B's agent runs it), what each trial cost (`cost`: peak RSS,
GPU memory) and the walltime guard.
May import `spec`, the shared transport (`queue`), `messages`, `env`, `exitcodes` and
`errors`; never `controller` (Optuna only for `TrialPruned`, and `optuna.distributions` in
`suggest`), `cli` or `launchers`.
"""
