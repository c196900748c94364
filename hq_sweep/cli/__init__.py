"""The command line (typer): thin commands that parse flags, call the parts that do the work
and turn their errors into one line and an exit code (`common`).

Owns the commands (`app`: run, enqueue, controller, worker, start-workers; `results`;
`server`; `sbatch`), the glue that runs a whole sweep on this machine (`local_run`) and the
detached controller start (`detached`). The top of the import graph: it may import every
folder, and nothing imports it but the Python API (`hq_sweep/api/`), which runs
`local_run`'s glue as `hq-sweep run` does.
"""
