"""Central log collection of the audit log: each record, once it is durable in the
local log, is also sent to syslog as an RFC 5424 message.

``--audit-forward URL`` (or ``audit_forward`` in the config, or
``RUNBOOK_AUDIT_FORWARD``):

- ``syslog://HOST[:PORT]`` or ``syslog+udp://HOST[:PORT]``: UDP, port 514 by default;
- ``syslog+tcp://HOST[:PORT]``: TCP with octet-counting framing (RFC 6587);
- ``unix:///dev/log`` (or any path): the local syslog socket (datagram, else stream).

The local log stays the source of truth: a record is forwarded only after its
fsync, and a forwarding failure never stops a run or loses a local record. It is a
warning (once, and once more when forwarding works again); records that could not be
sent wait in a bounded backlog (``BACKLOG`` records) and go out when the collector is
back, the oldest dropped (and counted in the warning) when it overflows. A TCP
collector that is down is tried again at most every ``RETRY_AFTER`` seconds, so a
dead collector does not slow the run.

The message: ``<PRI>1 TIMESTAMP HOSTNAME runbook PROCID EVENT [runbook@32473 run_id=..
seq=..] RECORD`` where RECORD is the audit line itself (JSON, with its ``prev_hash``
and ``hmac``), so the collector can verify the chain too. Facility 13 (log audit);
severity warning for a record saying something failed, else informational.
(32473 is the private enterprise number RFC 5612 reserves for examples: SD-IDs need
one.)
"""

from __future__ import annotations

import collections
import errno
import json
import os
import socket
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

BACKLOG = 10_000
RETRY_AFTER = 10.0  # seconds before a failed collector is tried again
CONNECT_TIMEOUT = 0.5
_FACILITY = 13  # log audit
_INFO, _WARNING = 6, 4
_BAD = frozenset({"failed", "unknown", "rolled_back", "rollback_failed", "no_go"})
_SCHEMES = {"syslog": "udp", "syslog+udp": "udp", "syslog+tcp": "tcp", "unix": "unix"}


@dataclass(frozen=True, slots=True)
class Target:
    kind: str  # udp | tcp | unix
    host: str = ""
    port: int = 514
    path: str = ""

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix://{self.path}"
        return f"syslog+{self.kind}://{self.host}:{self.port}"


def parse_target(url: str) -> Target:
    """The collector a URL names; ``InputError`` (exit 2) for a malformed one."""
    parsed = urllib.parse.urlsplit(url)
    kind = _SCHEMES.get(parsed.scheme)
    if kind is None:
        raise InputError(
            f"--audit-forward {url!r}: use syslog://HOST:PORT (UDP),"
            " syslog+tcp://HOST:PORT or unix:///dev/log"
        )
    if kind == "unix":
        if not parsed.path.startswith("/"):
            raise InputError(f"--audit-forward {url!r}: unix:// needs an absolute path")
        return Target(kind, path=parsed.path)
    try:
        port = parsed.port or 514
    except ValueError:
        raise InputError(f"--audit-forward {url!r}: the port is not a number") from None
    if not parsed.hostname:
        raise InputError(f"--audit-forward {url!r}: no host")
    return Target(kind, host=parsed.hostname, port=port)


class Forwarder:
    """Sends audit lines to one collector; never raises. ``warn`` receives the
    warnings (the console shows them)."""

    def __init__(
        self,
        target: Target,
        warn: Callable[[str], None],
        *,
        retry_after: float = RETRY_AFTER,
    ) -> None:
        self.target = target
        self._warn = warn
        self._retry_after = retry_after
        self._socket: socket.socket | None = None
        self._backlog: collections.deque[bytes] = collections.deque(maxlen=BACKLOG)
        self._dropped = 0
        self._failing = False
        self._next_try = 0.0
        self._hostname = socket.gethostname() or "-"
        self._pid = str(os.getpid())

    def send(self, lines: Sequence[bytes]) -> None:
        """Forward audit lines (as written, without newline), in order."""
        for line in lines:
            if len(self._backlog) == self._backlog.maxlen:
                self._dropped += 1
            self._backlog.append(self._message(line))
        if time.monotonic() < self._next_try:
            return
        try:
            sock = self._connected()
            while self._backlog:
                self._send_one(sock, self._backlog[0])
                self._backlog.popleft()
        except OSError as exc:
            self._failed(exc)
            return
        self._recovered()

    def close(self) -> None:
        if self._backlog and not self._failing:
            self.send(())
        if self._backlog:
            self._warn(
                f"audit forwarding to {self.target}: {len(self._backlog)} record(s)"
                " were not forwarded; the local audit log has them"
            )
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    # -- plumbing ---------------------------------------------------------------------

    def _connected(self) -> socket.socket:
        if self._socket is not None:
            return self._socket
        target = self.target
        if target.kind == "unix":
            sock = _unix_socket(target.path)
        elif target.kind == "udp":
            sock = socket.socket(_family(target.host), socket.SOCK_DGRAM)
            sock.connect((target.host, target.port))
        else:
            sock = socket.create_connection(
                (target.host, target.port), timeout=CONNECT_TIMEOUT
            )
            sock.settimeout(CONNECT_TIMEOUT * 4)
        self._socket = sock
        return sock

    def _send_one(self, sock: socket.socket, message: bytes) -> None:
        if sock.type != socket.SOCK_STREAM:
            sock.send(message)  # one datagram, one message
        elif self.target.kind == "tcp":
            sock.sendall(str(len(message)).encode() + b" " + message)  # RFC 6587
        else:
            sock.sendall(message + b"\n")  # a local syslogd's stream socket

    def _failed(self, exc: OSError) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._next_try = time.monotonic() + self._retry_after
        if not self._failing:
            self._failing = True
            self._warn(
                f"audit forwarding to {self.target} failed ({exc.strerror or exc});"
                " records are kept in the local audit log and sent when it is back"
            )

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            lost = f"; {self._dropped} older record(s) dropped" if self._dropped else ""
            self._warn(f"audit forwarding to {self.target} works again{lost}")
            self._dropped = 0

    def _message(self, line: bytes) -> bytes:
        try:
            record = json.loads(line)
        except ValueError:
            record = {}
        severity = _WARNING if _says_failure(record) else _INFO
        stamp = str(record.get("ts") or _now())
        event = _token(str(record.get("event") or "-"), 32)
        data = (
            f'[runbook@32473 run_id="{_sd(record.get("run_id"))}"'
            f' seq="{_sd(record.get("seq"))}"]'
        )
        head = (
            f"<{_FACILITY * 8 + severity}>1 {stamp} {_token(self._hostname, 255)}"
            f" runbook {self._pid} {event} {data} "
        )
        return head.encode("utf-8") + line


def _says_failure(record: dict[str, object]) -> bool:
    if record.get("status") in _BAD:
        return True
    return record.get("event") == "rollback.finished" and record.get("ok") is False


def _token(text: str, limit: int) -> str:
    """A header field: printable US-ASCII, no spaces (RFC 5424 PRINTUSASCII)."""
    cleaned = "".join(c for c in text if 33 <= ord(c) <= 126)
    return cleaned[:limit] or "-"


def _sd(value: object) -> str:
    """An SD-PARAM value: '"', '\\' and ']' escaped."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _unix_socket(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.connect(path)
        return sock
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EPROTOTYPE:  # a stream socket (some syslogds)
            raise
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT * 4)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock
