"""Launchers start warm workers: local processes here; Slurm and HyperQueue in later issues."""
