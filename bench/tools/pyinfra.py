"""pyinfra through its normal CLI: ``pyinfra -y INVENTORY deploy.py``.

``@local`` for local work; for SSH a Python inventory with the fleet's key, strict
host key checking against the same known_hosts, and ``--parallel`` = number of hosts.
Each step is one ``server.shell`` operation running ``true``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.model import Case, Command
from bench.tools import find_executable

if TYPE_CHECKING:
    from pathlib import Path

    from bench.fleet import Fleet, Host

NOT_INSTALLED = "pyinfra not installed (pip install -e '.[bench]')"


def write_deploy(path: Path, *, steps: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "from pyinfra.operations import server\n\n"
        f"for index in range(1, {steps} + 1):\n"
        '    server.shell(name=f"s{index}", commands=["true"])\n'
    )
    return path


def write_inventory(path: Path, fleet: Fleet, hosts: tuple[Host, ...]) -> Path:
    data = (
        f'"ssh_user": "root", "ssh_key": {str(fleet.client_key)!r}, '
        f'"ssh_known_hosts_file": {str(fleet.known_hosts)!r}, '
        '"ssh_strict_host_key_checking": "yes"'
    )
    rows = [
        f'    ("{h.name}", {{"ssh_hostname": "{h.address}", '
        f'"ssh_port": {h.port}, {data}}}),'
        for h in hosts
    ]
    path.write_text("fleet = [\n" + "\n".join(rows) + "\n]\n")
    return path


def deploy_case(
    deploy: Path, *, inventory: Path | None, units: int, parallel: int = 1
) -> Case:
    exe = find_executable("pyinfra")
    if exe is None:
        return Case(
            tool="pyinfra",
            label="pyinfra",
            units=units,
            make=_never,
            unavailable=NOT_INSTALLED,
        )
    target = "@local" if inventory is None else str(inventory)
    argv = (exe, "-y", "--parallel", str(parallel), target, str(deploy))
    command = Command(argv=argv, cwd=deploy.parent)
    return Case(tool="pyinfra", label="pyinfra", units=units, make=lambda _d: command)


def version_case() -> Case:
    exe = find_executable("pyinfra")
    if exe is None:
        return Case(
            tool="pyinfra",
            label="pyinfra --version",
            units=1,
            make=_never,
            unavailable=NOT_INSTALLED,
        )
    command = Command(argv=(exe, "--version"))
    return Case(
        tool="pyinfra", label="pyinfra --version", units=1, make=lambda _d: command
    )


def _never(_run_dir: Path) -> Command:
    raise AssertionError("an unavailable case is never run")
