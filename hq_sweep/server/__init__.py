"""The Redis-compatible server hq-sweep starts itself: no root, no system Redis.

Owns starting and stopping the server process with a generated password (`process`), the
private server of tests and `hq-sweep run` (`embedded`), and the connection file that tells
clients where the server is (`connection`), and how a child is told where the URL is without
being given it (`credentials`, `handoff`). Who gets in: the binary and what it can do
(`binary`), the sweep user's allowlist (`acl`), the config file (`config`), certificates
(`tls`), what a start will be (`plan`), the connection file's record (`info`). May import
the shared transport (`queue`) for the commands it sends a server, `errors`, and `env` (the
variables that name those files); nothing of the controller, worker or CLI.
"""
