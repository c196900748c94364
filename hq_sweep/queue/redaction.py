"""Hiding the password in a Redis URL before it is shown anywhere."""

from __future__ import annotations

import re

__all__ = ["redact", "redact_text"]

# A Redis URL's user-info anywhere in a text, also mangled into a path (`redis:/:pw@h`).
_URL_USERINFO = re.compile(r"\b(rediss?|unix):(/{0,2})([^\s/@:]*):([^\s@]+)@", re.IGNORECASE)
# `password=` in the query string is also honoured by redis-py, so it must be hidden too.
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def redact(url: str) -> str:
    """Replace any password (user-info or `password=` query) in `url` with `***`."""
    text = _QUERY_PASSWORD.sub(r"\1***", url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    # User-info ends at the last '@' before the query: over-redacting an '@' in a socket
    # path is harmless, while stopping at the first '@' could leak half a password.
    head, qsep, tail = rest.partition("?")
    userinfo, at, hostpart = head.rpartition("@")
    if not at or not userinfo:
        return text
    user, colon, _secret = userinfo.partition(":")
    # A lone user-info token is ambiguous (`redis://SECRET@host`), so hide it as well.
    hidden = f"{user}:***" if colon else "***"
    return f"{scheme}://{hidden}@{hostpart}{qsep}{tail}"


def redact_text(text: str) -> str:
    """`text` with the password of every Redis URL in it hidden: for messages that quote
    what a user typed (a URL given where a file was expected)."""
    return _URL_USERINFO.sub(r"\1:\2\3:***@", _QUERY_PASSWORD.sub(r"\1***", text))
