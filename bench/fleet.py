"""The simulated fleet: N real sshd on 127.0.0.1 from ``tests/support/sshd.py``.

Owns the client key and the known_hosts file every tool is pointed at (strict host
key checking everywhere: no tool gets to skip it). Each sshd gives its sessions an
empty ``HOME``, so root's slow ``~/.bashrc`` is never sourced by the remote shell;
every tool pays the same quiet remote environment. Their ``MaxStartups`` and
``MaxSessions`` are raised so the fleet scenario can put a hundred hosts on one sshd
(the bench raises its own open-files limit, which they inherit).
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tests.support.sshd import SSHServer, make_client_key, start_servers, stop_servers

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class Host:
    name: str
    address: str
    port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Fleet:
    hosts: tuple[Host, ...]
    client_key: Path
    known_hosts: Path
    servers: tuple[SSHServer, ...]

    def first(self, count: int) -> tuple[Host, ...]:
        if count > len(self.hosts):
            raise ValueError(f"fleet has {len(self.hosts)} hosts, {count} wanted")
        return self.hosts[:count]

    def stop(self) -> None:
        stop_servers(self.servers)


# a hundred inventory hosts per sshd connect at once in the fleet scenario
_SETTINGS = {"MaxStartups": "2000", "MaxSessions": "2000"}


def start_fleet(count: int, root: Path) -> Fleet:
    """Start ``count`` sshd (in parallel) and write known_hosts for all of them."""
    key = make_client_key(root / "client")
    servers = start_servers(
        count, root / "sshd", [key.public_line], prefix="h", settings=_SETTINGS
    )
    atexit.register(stop_servers, servers)  # also on an unexpected exit
    known_hosts = root / "client" / "known_hosts"
    known_hosts.write_text("".join(s.known_hosts_line() + "\n" for s in servers))
    hosts = tuple(
        Host(name=f"h{index + 1}", address=server.host, port=server.port)
        for index, server in enumerate(servers)
    )
    return Fleet(
        hosts=hosts,
        client_key=key.path,
        known_hosts=known_hosts,
        servers=tuple(servers),
    )
