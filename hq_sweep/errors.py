"""The base of every error hq-sweep explains to the user in one line (no traceback)."""


class HqSweepError(Exception):
    """A failure with a message meant for the user."""
