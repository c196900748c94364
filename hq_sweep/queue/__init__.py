"""Transport: the only code that issues Redis commands, shared by every other folder.

Owns the key schema (documented in `sweep_queue`), the Lua scripts in `lua/` that make state
changes atomic (each documents its KEYS/ARGV), the controller lock and its tokens, and riding
out a Redis restart (`retry`). May import `messages` and `errors`; nothing else of hq_sweep's.
"""
