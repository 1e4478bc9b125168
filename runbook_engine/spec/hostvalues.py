"""What a value that reaches an SSH connection or a remote script may look like:
the rules ``spec/inventory_build.py`` applies to inventory and ssh_config values so
that none of them can become an ssh option or a shell fragment."""

from __future__ import annotations

import getpass
import ipaddress
import re
from typing import Final

__all__ = ["ALLOWED", "JUMP", "USER", "is_valid_address", "local_user", "unsafe_part"]

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$")
USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$")
JUMP = re.compile(
    r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]]+\]|[^:@\s]+)(?::(?P<port>\d+))?$"
)
_UNSAFE: Final = (  # the most telling first
    (re.compile(r"[\x00-\x1f\x7f]"), "a newline or control character"),
    (re.compile(r"\$\("), "'$('"),
    (re.compile(r"`"), "a backtick"),
    (re.compile(r";"), "';'"),
    (re.compile(r"[\"']"), "a quote"),
    (re.compile(r"\s"), "whitespace"),
)
ALLOWED: Final = {
    "address": "a host name (letters, digits, '-', '_', '.') or an IP address",
    "user": "a POSIX user name (letters, digits, '_', '.', '-', not starting with"
    " '-' or a digit)",
    "path": "a path that does not start with '-' and has no whitespace, quotes,"
    " ';', '$(', backticks or control characters",
    "proxy_jump": "inventory host names or [user@]host[:port], separated by commas",
}


def local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "root"


def is_valid_address(address: str) -> bool:
    """A host name (RFC 1123 labels, no leading '-') or an IPv4/IPv6 literal."""
    if len(address) > 253 or not address:
        return False
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return bool(_HOSTNAME.match(address)) and not address.startswith("-")
    return True


def unsafe_part(value: str) -> str | None:
    """What in ``value`` could become an option or shell ("whitespace"); None when
    nothing does."""
    if value.startswith("-"):
        return "a leading '-'"
    for pattern, what in _UNSAFE:
        if pattern.search(value):
            return what
    return None
