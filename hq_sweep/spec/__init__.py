"""The sweep file: W&B Sweeps YAML, Argo's additions and hq-sweep's own keys, validated into a
`SweepSpec` (pydantic) whose errors name their path (`parameters.lr.max`).

Owns reading the YAML (`reading`), parsing, validation, the parameter tree and the `validate`
summary. May import only pydantic, PyYAML, the standard library and `errors`: no Optuna, no
Redis.
"""
