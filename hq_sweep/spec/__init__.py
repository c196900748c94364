"""The sweep file: W&B Sweeps YAML, Argo's additions and hq-sweep's own keys, validated into a
`SweepSpec` (pydantic) whose errors name their path (`parameters.lr.max`).

Owns parsing, validation, the parameter tree and the `validate` summary. May import only
pydantic, PyYAML and the standard library: no Optuna, no Redis, nothing else of hq_sweep's.
"""
