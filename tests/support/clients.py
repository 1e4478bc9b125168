"""Client-side helpers for tests that talk to the servers of ``sshd.py``: an output
sink that keeps what it gets, and the inventory ``Host`` for a server."""

from __future__ import annotations

import getpass
import os
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from runbook_engine.spec.inventory import Host
from runbook_engine.transports.base import Stream

if TYPE_CHECKING:
    from pathlib import Path

    from .sshd import ClientKey, SSHServer


class Capture:
    """An OutputSink that keeps what it gets, with arrival times."""

    def __init__(self) -> None:
        self.chunks: list[tuple[Stream, bytes, float]] = []

    def write(self, stream: Stream, data: bytes) -> None:
        self.chunks.append((stream, data, time.monotonic()))

    def text(self, stream: Stream = Stream.STDOUT) -> str:
        return b"".join(d for s, d, _ in self.chunks if s is stream).decode()


def login_user() -> str:
    """Who the tests log in as on their sshd: root when run as root."""
    return "root" if os.geteuid() == 0 else getpass.getuser()


def host_for(
    server: SSHServer, key: ClientKey, known_hosts: Path, **changes: object
) -> Host:
    host = Host(
        name=server.name,
        address=server.host,
        port=server.port,
        user=login_user(),
        identity_file=str(key.path),
        known_hosts=str(known_hosts),
        connect_timeout=5.0,
        keepalive=2.0,
    )
    return replace(host, **changes)  # type: ignore[arg-type]
