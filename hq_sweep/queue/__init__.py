"""Transport: the only code that talks to Redis, shared by every other folder.

`sweep.SweepQueue` is one sweep's handle, composed of one part per concern: `meta` (spec,
state, kept counters), `lock` (the controller's, with `lock_token`), `trials` (records, claims,
leases, requeues), `reports` (intermediate values up, decisions down, the controller's news)
and `workers` (heartbeats); `registry` lists and creates sweeps, `lifecycle` stops, cancels,
deletes and overviews them, `admin` asks the server itself (ping, INFO, SHUTDOWN). `keys`
documents every key; `lua/` holds the scripts that make state changes atomic (each documents
its KEYS/ARGV), run by `scripts`. `client` is the
connection policy and the boundary where redis-py's errors become `errors.TransportError`s;
`retry.patiently` rides out a restart. May import `messages` and `errors`; nothing else.
"""
