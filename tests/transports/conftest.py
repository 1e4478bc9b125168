"""Fixtures for the transport contract: the same test against every transport.

``transport`` is a ``LocalTransport`` and an ``SSHTransport`` to a real sshd on
127.0.0.1; ``files`` adds an ``SSHTransport`` to a sshd without the SFTP subsystem
(the exec fallback), so file rules are proved identical three ways. The sshd run on
this machine, so a test can look at the "remote" files and processes directly. A
missing sshd fails these tests (``SSHDStartError``); nothing skips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from runbook_engine.transports.local import LocalTransport
from runbook_engine.transports.ssh import SSHTransport
from tests.support.clients import host_for
from tests.support.sshd import ClientKey, SSHServer, make_client_key

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from runbook_engine.transports.base import Transport


@dataclass(frozen=True)
class Servers:
    sftp: SSHServer
    exec: SSHServer
    known_hosts: Path
    key: ClientKey


@pytest.fixture(scope="session")
def contract_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    root = tmp_path_factory.mktemp("contract")
    key = make_client_key(root / "client")
    started: list[SSHServer] = []
    try:
        for name, sftp in (("with-sftp", True), ("without-sftp", False)):
            server = SSHServer(root / name, [key.public_line], name=name, sftp=sftp)
            started.append(server.start())
        known = root / "known_hosts"
        known.write_text("".join(s.known_hosts_line() + "\n" for s in started))
        yield Servers(sftp=started[0], exec=started[1], known_hosts=known, key=key)
    finally:
        for server in started:
            server.stop()


def _open(kind: str, servers: Servers) -> Transport:
    if kind == "local":
        return LocalTransport()
    server = servers.sftp if kind in ("ssh", "sftp") else servers.exec
    transport = SSHTransport(host_for(server, servers.key, servers.known_hosts))
    transport.connect()
    return transport


@pytest.fixture(params=["local", "ssh"])
def transport(
    request: pytest.FixtureRequest, contract_servers: Servers
) -> Iterator[Transport]:
    opened = _open(request.param, contract_servers)
    yield opened
    opened.close()


@pytest.fixture(params=["local", "sftp", "exec"])
def files(
    request: pytest.FixtureRequest, contract_servers: Servers
) -> Iterator[Transport]:
    opened = _open(request.param, contract_servers)
    assert opened.file_transfer().method == request.param
    yield opened
    opened.close()
