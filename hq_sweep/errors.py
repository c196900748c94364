"""The one error tree: every failure hq-sweep explains to the user in one line, no traceback.

The CLI catches `HqSweepError` alone and exits with the error's `exit_code`; a new error needs
no change there. Exit codes: 1 a failure (the default), 2 bad input (a sweep file, a flag),
3 the user's code cannot start (import or setup() failed: `exitcodes.UNUSABLE`, as a worker),
4 a sweep ended without one complete trial, 16 the sweep had already finished
(`exitcodes.ENDED`). README's "Exit codes" lists them.
"""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_INVALID = 2
EXIT_NO_COMPLETE = 4


class HqSweepError(Exception):
    """A failure with a message meant for the user."""

    exit_code: int = EXIT_FAILURE
    prefixed: bool = True  # the CLI prints "error: " before the message

    def lines(self) -> list[str]:
        """What the CLI prints: one line, or one per problem (a sweep file's issues)."""
        return [str(self)]


class InvalidInput(HqSweepError):
    """Bad input the user can fix: a sweep file, a flag, a template."""

    exit_code = EXIT_INVALID


class TransportError(HqSweepError):
    """Redis failed a command: the queue's boundary turns redis-py's errors into these."""


class RedisUnavailable(TransportError):
    """Redis cannot be reached now (refused, timed out, restarting): worth retrying."""


class RedisRefused(TransportError):
    """Redis refused us: a wrong password or a missing permission. Retrying cannot help."""
