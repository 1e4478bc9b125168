"""How YAML read a value, in words: "YAML read the unquoted 0755 as the number 493;
write '0755' in quotes". Shared by the loader (keys), the schema messages (values)
and the inventory; knows no YAML library and no format.

YAML 1.1, which PyYAML implements, reads unquoted ``yes`` / ``no`` / ``on`` / ``off``
as booleans, ``0644`` as an octal number, ``3.10`` as the float 3.1, ``1:30`` as 90
and ``2024-01-31`` as a date. :func:`is_lossy` tells such a reading from one that
keeps what was written (``42``, ``1.5``, ``true``).
"""

from __future__ import annotations

import datetime
import math

__all__ = ["describe_value", "explain_plain_scalar", "is_lossy", "reading"]


def explain_plain_scalar(text: str, value: object, *, typed: bool = False) -> str:
    """Say how YAML 1.1 read an unquoted scalar and how to keep it a string:
    ``YAML read the unquoted 0755 as the number 493; write '0755' in quotes``.
    ``typed``: the place also takes that type, so say how to write it instead."""
    if not text.strip():
        return "the value is empty"
    quoted = "'" + text.replace("'", "''") + "'"
    message = (
        f"YAML read the unquoted {text} as {reading(value)}; write {quoted} in quotes"
    )
    if typed and value is not None and not isinstance(value, datetime.date):
        kind = "a boolean" if isinstance(value, bool) else "a number"
        message += f" for text, or {_canonical(value)} for {kind}"
    return message


def is_lossy(text: str, value: object) -> bool:
    """True when YAML read the unquoted ``text`` as a non-string that does not
    print back as ``text``: ``no`` (false), ``0644`` (420), ``3.10`` (3.1), dates.
    ``true``, ``42``, ``1.5`` and ``null`` are what they say."""
    if isinstance(value, bool):
        return text.lower() not in ("true", "false")
    if isinstance(value, int | float):
        return _canonical(value) != text
    return isinstance(value, datetime.date)


def _canonical(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return repr(value)


def describe_value(value: object) -> str:
    """ "the number 493", "the string 'x'", "a list": a value as messages name it."""
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return reading(value)


def reading(value: object) -> str:
    """ "the boolean false", "the number 493", "the date 2024-01-31", "null"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, datetime.datetime):
        return f"the timestamp {value.isoformat()}"
    if isinstance(value, datetime.date):
        return f"the date {value.isoformat()}"
    return f"a {type(value).__name__}"
