"""Slurm batch scripts: rendering the `sbatch` script that runs a whole sweep (server,
controller, workers, chained allocations). Pure text in, text out: it starts nothing.

May import the standard library only; the `hq-sweep sbatch` command (in `cli`) writes and
submits what it renders.
"""
