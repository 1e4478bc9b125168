"""``copy:`` and ``template:`` through the real CLI to a host whose sshd has no SFTP
subsystem (a hardened host) beside one that has it: the same results either way,
and the audit record of each step says how the file travelled."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from tests.conftest import audit_records
from tests.support.clients import login_user
from tests.support.sshd import SSHServer, make_client_key

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.e2e, pytest.mark.ssh]


@dataclass
class Pair:
    plain: SSHServer  # with SFTP
    hardened: SSHServer  # without
    inventory: Path

    def home(self, name: str) -> Path:
        return (self.plain if name == "plain" else self.hardened).home


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    directory = tmp_path_factory.mktemp("no-sftp")
    key = make_client_key(directory / "client")
    plain = SSHServer(directory / "plain", [key.public_line], name="plain")
    hardened = SSHServer(
        directory / "hardened", [key.public_line], name="hardened", sftp=False
    )
    started = [server.start() for server in (plain, hardened)]
    try:
        known = directory / "known_hosts"
        known.write_text("".join(s.known_hosts_line() + "\n" for s in started))
        inventory = directory / "inventory.yaml"
        inventory.write_text(
            "version: 1\n"
            f"defaults: {{user: {login_user()}, identity_file: {key.path},"
            f" known_hosts: {known}, connect_timeout: 5s}}\n"
            "hosts:\n"
            + "".join(
                f"  {s.name}: {{address: 127.0.0.1, port: {s.port}}}\n" for s in started
            )
        )
        yield Pair(plain=plain, hardened=hardened, inventory=inventory)
    finally:
        for server in started:
            server.stop()


def _finished(state_dir: Path) -> list[dict[str, object]]:
    return [r for r in audit_records(state_dir) if r["event"] == "step.finished"]


def test_copy_and_template_reach_a_host_without_sftp(
    runbook_cli, write_runbook, pair, tmp_path, state_dir
):
    payload = bytes(range(256)) * 8192 + b"\0tail"  # binary, 2 MB
    (tmp_path / "tool.bin").write_bytes(payload)
    (tmp_path / "app.conf.j2").write_text("host={{ host.name }} port=8080\n")
    rb = write_runbook("""
        version: 1
        name: files_everywhere
        hosts: [plain, hardened]
        steps:
          - id: tool
            copy: {src: tool.bin, dest: tool.bin, mode: "0750"}
          - id: conf
            template: {src: app.conf.j2, dest: app.conf, mode: "0600"}
    """)
    first = runbook_cli("run", str(rb), "-i", str(pair.inventory), "--output", "json")
    assert first.code == 0, first.output
    assert {s["status"] for s in first.json()["steps"]} == {"changed"}
    for name in ("plain", "hardened"):
        home = pair.home(name)
        assert (home / "tool.bin").read_bytes() == payload
        assert (home / "tool.bin").stat().st_mode & 0o7777 == 0o750
        assert (home / "app.conf").read_text() == f"host={name} port=8080\n"
        assert (home / "app.conf").stat().st_mode & 0o7777 == 0o600
        assert not [p for p in home.iterdir() if ".runbook-" in p.name]
    transfers = {(r["host"], r["step"]): r["transfer"] for r in _finished(state_dir)}
    assert transfers == {
        ("plain", "tool"): "sftp",
        ("plain", "conf"): "sftp",
        ("hardened", "tool"): "exec",
        ("hardened", "conf"): "exec",
    }
    again = runbook_cli(
        "run", str(rb), "-i", str(pair.inventory), "--output", "json", "-v"
    )
    assert {s["status"] for s in again.json()["steps"]} == {"ok"}
    assert "(transfer: exec)" in again.stderr and "(transfer: sftp)" in again.stderr
    assert "transfer:" not in first.stderr  # only shown with -v


def test_a_failed_write_to_a_host_without_sftp_leaves_nothing_behind(
    runbook_cli, write_runbook, pair, tmp_path, state_dir
):
    locked = pair.hardened.home / "locked"
    locked.mkdir(exist_ok=True)
    (tmp_path / "app.conf").write_text("x\n")
    rb = write_runbook(f"""
        version: 1
        name: refused
        hosts: hardened
        steps:
          - id: conf
            copy: {{src: app.conf, dest: {locked}/app.conf}}
    """)
    immutable = os.geteuid() == 0  # root writes anywhere: make the dir immutable
    if immutable:
        subprocess.run(["chattr", "+i", str(locked)], check=True)
    else:
        locked.chmod(0o555)
    try:
        result = runbook_cli("run", str(rb), "-i", str(pair.inventory))
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(locked)], check=True)
        else:
            locked.chmod(0o755)
    assert result.code == 1, result.output
    assert f"cannot write {locked}/app.conf" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(locked.iterdir()) == []
    (record,) = _finished(state_dir)
    assert (record["status"], record["transfer"]) == ("failed", "exec")
