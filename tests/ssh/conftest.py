"""Fixtures for the SSH tests: real sshd servers on 127.0.0.1 and client keys.

A missing or broken sshd fails these tests (SSHDStartError with the log); nothing
here skips.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from runbook_engine.transports.base import ExecRequest, ExecResult
from runbook_engine.transports.ssh import SSHTransport
from tests.support.clients import Capture, host_for
from tests.support.sshd import ClientKey, SSHServer, make_client_key, start_servers

if TYPE_CHECKING:
    from pathlib import Path

    from runbook_engine.spec.inventory import Host


Runner = Callable[..., tuple[ExecResult, Capture]]


@pytest.fixture
def run() -> Runner:
    """``run(transport, "cmd", env=..., cwd=..., timeout=..., cancel=...)``."""

    def run_one(
        transport: SSHTransport,
        command: str | None = None,
        *,
        cancel: threading.Event | None = None,
        **fields: object,
    ) -> tuple[ExecResult, Capture]:
        sink = Capture()
        request = ExecRequest(command=command, **fields)  # type: ignore[arg-type]
        return transport.exec(request, sink, cancel or threading.Event()), sink

    return run_one


@pytest.fixture
def make_host(client_key: ClientKey) -> Callable[..., Host]:
    """``make_host(server, known_hosts, **field_changes)`` with the shared key."""

    def make(server: SSHServer, known_hosts: Path, **changes: object) -> Host:
        return host_for(server, client_key, known_hosts, **changes)

    return make


@pytest.fixture(scope="session")
def ssh_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ssh")


@pytest.fixture(scope="session")
def client_key(ssh_root: Path) -> ClientKey:
    return make_client_key(ssh_root / "client")


@pytest.fixture(scope="session")
def servers(ssh_root: Path, client_key: ClientKey) -> Iterator[list[SSHServer]]:
    """Three long-lived hosts shared by the tests that do not break them."""
    started = start_servers(3, ssh_root / "shared", [client_key.public_line])
    yield started
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def hardened(ssh_root: Path, client_key: ClientKey) -> Iterator[SSHServer]:
    """A long-lived host whose sshd has no SFTP subsystem (a hardened host)."""
    server = SSHServer(
        ssh_root / "hardened", [client_key.public_line], name="hardened", sftp=False
    ).start()
    yield server
    server.stop()


@pytest.fixture
def server_factory(
    tmp_path: Path, client_key: ClientKey
) -> Iterator[Callable[..., SSHServer]]:
    """Fresh servers for tests that kill, stop or re-key them; ``options`` go to
    ``SSHServer`` (``sftp=False``, ``settings={...}``)."""
    made: list[SSHServer] = []

    def make(
        name: str = "fresh", keys: list[str] | None = None, **options: Any
    ) -> SSHServer:
        authorized = keys if keys is not None else [client_key.public_line]
        server = SSHServer(tmp_path / name, authorized, name=name, **options).start()
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def trusted(tmp_path: Path, servers: list[SSHServer]) -> Path:
    """A known_hosts file listing the shared servers' keys."""
    path = tmp_path / "known_hosts"
    path.write_text("".join(s.known_hosts_line() + "\n" for s in servers))
    return path


@pytest.fixture
def connect(
    client_key: ClientKey,
) -> Iterator[Callable[..., SSHTransport]]:
    """Open (and later close) an SSHTransport to a server."""
    opened: list[SSHTransport] = []

    def open_one(
        server: SSHServer,
        known_hosts: Path,
        *,
        accept_new: bool = False,
        **changes: object,
    ) -> SSHTransport:
        transport = SSHTransport(
            host_for(server, client_key, known_hosts, **changes),
            accept_new_host_keys=accept_new,
        )
        opened.append(transport)
        transport.connect()
        return transport

    yield open_one
    for transport in opened:
        transport.close()
