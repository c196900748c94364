"""The Redis-compatible server hq-sweep starts itself: no root, no system Redis.

Owns starting and stopping the server process with a generated password (`process`), the
private server of tests and `hq-sweep run` (`embedded`), and the connection file that tells
clients where the server is (`connection`). May import the shared transport (`queue`) for the
commands it sends a server, and `errors`; nothing of the controller, worker or CLI.
"""
