"""A fleet of real sshd hosts on 127.0.0.1 with an inventory file for the CLI."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

# the example service's deploy roots and a local GitHub API, for the procedure tests
from tests.e2e.fake_github import github  # noqa: F401
from tests.e2e.service_targets import (  # noqa: F401
    artifacts,
    clean_env,
    rb,
    target,
    two_hosts,
)
from tests.support.sshd import (
    ClientKey,
    SSHServer,
    make_client_key,
    start_servers,
    stop_servers,
)

if TYPE_CHECKING:
    from pathlib import Path


@dataclass
class Fleet:
    servers: list[SSHServer]
    key: ClientKey
    known_hosts: Path
    directory: Path

    def inventory(
        self,
        name: str = "inventory.yaml",
        *,
        known: bool = True,
        extra: str = "",
        groups: str = "",
    ) -> Path:
        known_hosts = (
            self.known_hosts if known else self.directory / "empty_known_hosts"
        )
        if not known:
            known_hosts.write_text("")
        user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
        lines = [
            "# yaml-language-server: $schema=../../schemas/inventory.schema.json",
            "version: 1",
            f"defaults: {{user: {user}, identity_file: {self.key.path}, known_hosts: {known_hosts},"
            " connect_timeout: 5s}",
            "hosts:",
        ]
        for server in self.servers:
            lines.append(
                f"  {server.name}: {{address: 127.0.0.1, port: {server.port}}}"
            )
        names = ", ".join(s.name for s in self.servers)
        lines.append("groups:")
        lines.append(f"  web: [{names}]")
        if groups:
            lines.append(groups)
        if extra:
            lines.append(extra)
        path = self.directory / name
        path.write_text("\n".join(lines) + "\n")
        return path

    def home(self, index: int) -> Path:
        return self.servers[index].home


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    directory = tmp_path_factory.mktemp("fleet")
    key = make_client_key(directory / "client")
    servers = start_servers(3, directory / "hosts", [key.public_line], prefix="web")
    known = directory / "known_hosts"
    known.write_text("".join(s.known_hosts_line() + "\n" for s in servers))
    try:
        yield Fleet(servers=servers, key=key, known_hosts=known, directory=directory)
    finally:
        stop_servers(servers)


FleetFactory = Callable[[int], Fleet]
