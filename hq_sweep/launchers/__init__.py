"""Launchers start warm workers and supervise them until the sweep ends: local processes
(`local`), srun steps inside a Slurm allocation (`slurm`), HyperQueue tasks (`hyperqueue`), and
the sbatch scripts that run them (`batch/`). This folder owns how a worker is started and
kept running: the `Launcher` Protocol and the supervision loop (`_base`), the one restart /
backoff / crash-loop policy every launcher follows (`slots`), and the one list of launcher
names (`registry`). It may import the standard library, `hq_sweep.env`, `hq_sweep.exitcodes`
and `hq_sweep.errors` (and `hyperqueue`, lazily), never the controller, the worker or the
CLI: workers are only ever reached as processes, through their exit codes. To add a
launcher, write one module whose class satisfies `Launcher` (keeping its slots in a
`slots.Slots`, so restarts follow the shared policy), then add a `LauncherName` member and
its factory to `registry._FACTORIES`; the CLI needs no change.
"""
