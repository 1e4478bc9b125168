"""The floors as cases: bare interpreter, interpreter + our dependencies, and the
``bench/floors.py`` programs (spawn + fsync, paramiko exec, output drains)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bench.model import Case, Command

if TYPE_CHECKING:
    from bench.fleet import Fleet, Host

FLOORS = Path(__file__).resolve().parents[1] / "floors.py"
IMPORTS = "import paramiko, jinja2, yaml, jsonschema, click, tenacity"


def _script(*args: str) -> tuple[str, ...]:
    return (sys.executable, str(FLOORS), *args)


def python_case() -> Case:
    command = Command(argv=(sys.executable, "-c", "pass"))
    return Case(
        tool="floor", label="floor: python -c pass", units=1, make=lambda _d: command
    )


def imports_case() -> Case:
    command = Command(argv=(sys.executable, "-c", IMPORTS))
    return Case(
        tool="floor",
        label="floor: python + our 6 deps",
        units=1,
        make=lambda _d: command,
    )


def spawn_fsync_case(steps: int) -> Case:
    def make(run_dir: Path) -> Command:
        argv = _script("spawn-fsync", "--steps", str(steps), "--dir", str(run_dir))
        return Command(argv=argv, parse_json=True)

    return Case(tool="floor", label="floor: spawn + fsync", units=steps, make=make)


def _ssh_args(fleet: Fleet, hosts: tuple[Host, ...]) -> tuple[str, ...]:
    return (
        "--key", str(fleet.client_key), "--known-hosts", str(fleet.known_hosts),
        *(f"{h.address}:{h.port}" for h in hosts),
    )  # fmt: skip


def ssh_exec_case(fleet: Fleet, hosts: tuple[Host, ...], steps: int) -> Case:
    argv = _script("ssh-exec", "--steps", str(steps), *_ssh_args(fleet, hosts))
    command = Command(argv=argv, parse_json=True)
    label = "floor: paramiko exec" + (
        f", {len(hosts)} threads" if len(hosts) > 1 else ""
    )
    return Case(
        tool="floor", label=label, units=steps * len(hosts), make=lambda _d: command
    )


def drain_local_case(size: int) -> Case:
    command = Command(
        argv=_script("drain-local", "--bytes", str(size)), parse_json=True
    )
    return Case(
        tool="floor", label="floor: pipe drain", units=1, make=lambda _d: command
    )


def drain_ssh_case(fleet: Fleet, host: Host, size: int) -> Case:
    argv = _script("drain-ssh", "--bytes", str(size), *_ssh_args(fleet, (host,)))
    command = Command(argv=argv, parse_json=True)
    return Case(
        tool="floor", label="floor: paramiko drain", units=1, make=lambda _d: command
    )
