"""What the controller's loop drives: a strategy says which trials to run, what to make of
their results and reports, and what it would tell a trial that reports.

`_base` holds the interface (`Strategy`) and the values that cross it; `optuna_ask_tell` is
today's one implementation, Optuna's ask/tell; `choice` picks a sweep's strategy. Nothing
here touches Redis: the loop moves what a strategy asks for and decides to and from the
queue. (This file imports no module, so `rebuild` may import `_base` without a circle.)
"""
