"""The Python API: `hq_sweep.optimize`, Optuna's `study.optimize` on local warm workers
(`optimizing`), with where workers find the objective (`objective`), the sweep built from the
arguments (`sweep_spec`), the run itself (`session`) and its progress bar (`progress`).

Reached lazily through `hq_sweep.optimize`, so `import hq_sweep` (and the CLI) pays nothing
for it. It may import what the CLI does, and reuses `cli.local_run` (`hq-sweep run`'s glue);
nothing imports it but the top package.
"""
