"""ansible-playbook with its fastest honest settings.

``gathering = explicit`` (no facts), ``pipelining = True``, OpenSSH with
``ControlMaster=auto`` / ``ControlPersist=600s`` (warmed once before the timed
repetitions), ``forks`` = number of hosts, strict host key checking against the
fleet's known_hosts, the ``command`` module as a normal user writes it, and a
``raw`` row (no Python module on the target) for comparison.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bench.model import Case, Command
from bench.tools import find_executable

if TYPE_CHECKING:
    from bench.fleet import Fleet, Host

GROUP = "fleet"
NOT_INSTALLED = "ansible-playbook not installed (pip install -e '.[bench]')"
REMOTE_PYTHON = (
    "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
)


def write_playbook(
    path: Path, *, hosts: str, steps: int, module: str, local: bool = False
) -> Path:
    lines = [f"- hosts: {hosts}", "  gather_facts: false"]
    if local:
        lines.append("  connection: local")
    lines.append("  tasks:")
    for index in range(1, steps + 1):
        lines += [f"    - name: s{index}", f'      {module}: "true"']
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_local_inventory(path: Path) -> Path:
    interpreter = f"ansible_python_interpreter={sys.executable}"
    path.write_text(f"localhost ansible_connection=local {interpreter}\n")
    return path


def write_ssh_inventory(path: Path, fleet: Fleet, hosts: tuple[Host, ...]) -> Path:
    lines = [f"[{GROUP}]"]
    lines += [
        f"{h.name} ansible_host={h.address} ansible_port={h.port} ansible_user=root"
        f" ansible_ssh_private_key_file={fleet.client_key}"
        f" ansible_python_interpreter={REMOTE_PYTHON}"
        for h in hosts
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_config(
    directory: Path, *, inventory: Path, forks: int, known_hosts: Path | None
) -> Path:
    """ansible.cfg for one scenario; the ControlPath lives in ``directory/cp``."""
    control_dir = directory / "cp"
    control_dir.mkdir(parents=True, exist_ok=True)
    ssh_args = "-o ControlMaster=auto -o ControlPersist=600s -o IdentitiesOnly=yes"
    if known_hosts is not None:
        ssh_args += f" -o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes"
    text = f"""[defaults]
inventory = {inventory}
forks = {forks}
gathering = explicit
host_key_checking = True
retry_files_enabled = False
deprecation_warnings = False
interpreter_python = {REMOTE_PYTHON}

[ssh_connection]
pipelining = True
ssh_args = {ssh_args}
control_path_dir = {control_dir}
control_path = %(directory)s/%%C
"""
    path = directory / "ansible.cfg"
    path.write_text(text)
    return path


def _env(config: Path) -> dict[str, str]:
    home = config.parent / "ansible-home"
    return {
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
    }


def playbook_case(
    playbook: Path,
    *,
    config: Path,
    units: int,
    tool: str = "ansible",
    warmup: Path | None = None,
) -> Case:
    exe = find_executable("ansible-playbook")
    if exe is None:
        return Case(
            tool=tool, label=tool, units=units, make=_never, unavailable=NOT_INSTALLED
        )
    env, cwd = _env(config), config.parent
    command = Command(argv=(exe, str(playbook)), env=env, cwd=cwd)
    case = Case(tool=tool, label=tool, units=units, make=lambda _d: command)
    if warmup is None:
        return case
    warm = Command(argv=(exe, str(warmup)), env=env, cwd=cwd)
    return dataclasses.replace(case, warmup=lambda _d: warm)


def syntax_check_case(playbooks: list[Path], *, config: Path, units: int) -> Case:
    exe = find_executable("ansible-playbook")
    label = "ansible-playbook --syntax-check"
    if exe is None:
        return Case(
            tool="ansible",
            label=label,
            units=units,
            make=_never,
            unavailable=NOT_INSTALLED,
        )
    argv = (exe, "--syntax-check", *map(str, playbooks))
    command = Command(argv=argv, env=_env(config), cwd=config.parent)
    return Case(tool="ansible", label=label, units=units, make=lambda _d: command)


def version_case() -> Case:
    exe = find_executable("ansible-playbook")
    label = "ansible-playbook --version"
    if exe is None:
        return Case(
            tool="ansible", label=label, units=1, make=_never, unavailable=NOT_INSTALLED
        )
    command = Command(argv=(exe, "--version"))
    return Case(tool="ansible", label=label, units=1, make=lambda _d: command)


def stop_control_masters(root: Path) -> None:
    """Ask every ControlPersist master under ``root`` to exit (``ssh -O exit``)."""
    for socket_path in root.glob("**/cp/*"):
        subprocess.run(
            ["ssh", "-O", "exit", "-o", f"ControlPath={socket_path}", "bench-host"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
            check=False,
        )


def _never(_run_dir: Path) -> Command:
    raise AssertionError("an unavailable case is never run")
