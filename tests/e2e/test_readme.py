"""The README's demo, command by command, in a scratch environment.

The commands are parsed from README.md (the ``sh`` blocks of its set-up section), so
the README stays true: a command that stops working, or a new command nobody tests,
fails here. Install steps (venv, pip) are what ``.ci/run`` does already and the test
command is this very suite; every other command runs, in order, from the repository
root, with ``runbook`` on PATH as after ``. .venv/bin/activate``, a scratch TMPDIR
(the demo deploys into ``$TMPDIR/runbook-demo``), its own state dir and a free port.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from tests.conftest import ROOT, audit_records

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.e2e

SETUP_HEADING = "## Set up"
COMMANDS_HEADING = "## Commands"
RUN_ID = re.compile(r"\b\d{8}-\d{6}-[0-9a-f]{6}\b")
INSTALL = re.compile(r"^(python3 -m venv \.venv|\.venv/bin/pip install .*)$")
TEST_COMMAND = re.compile(r"^\.venv/bin/python -m pytest\b")
ACTIVATE = ". .venv/bin/activate"


@dataclass(frozen=True)
class Command:
    line: str

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.line)

    @property
    def words(self) -> list[str]:
        """The command's words after any VAR=value prefixes."""
        words = self.argv
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            words = words[1:]
        return words

    @property
    def is_runbook(self) -> bool:
        return bool(self.words) and self.words[0] == "runbook"

    @property
    def key(self) -> str:
        """`run runbooks/release.yaml` for `runbook ...` commands, else the line."""
        return " ".join(self.words[1:3]) if self.is_runbook else self.line


def demo_commands(readme: str, heading: str = SETUP_HEADING) -> list[Command]:
    """Commands of a section's sh blocks, `&&` chains split, comments cut."""
    start = readme.index(heading)
    end = readme.index("\n## ", start + len(heading))
    section = readme[start:end]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for raw in block.splitlines():
            line = _strip_comment(raw).strip()
            if not line:
                continue
            for part in line.split("&&"):
                commands.append(Command(part.strip()))
    return commands


def _strip_comment(line: str) -> str:
    """`cmd args   # why` -> `cmd args` (README comments follow blanks)."""
    return re.sub(r"(^|\s+)#(\s.*)?$", "", line)


def runnable(commands: list[Command]) -> list[Command]:
    """The commands the test runs: not the install, not the test suite itself."""
    kept = []
    for command in commands:
        if INSTALL.match(command.line) or TEST_COMMAND.match(command.line):
            continue
        if command.line == ACTIVATE:
            continue
        line = command.line.removeprefix(".venv/bin/")
        kept.append(Command(line))
    return kept


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of an operator who just installed runbook."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "runbook"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m runbook_engine "$@"\n')
    wrapper.chmod(0o755)
    scratch_tmp = tmp_path / "tmp"
    scratch_tmp.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RUNBOOK_", "PYTEST_"))
        and k not in ("JWT_SECRET", "BOOTSTRAP_ADMIN_PASSWORD")
    }
    env.update(
        PATH=f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}",
        TMPDIR=str(scratch_tmp),
        RUNBOOK_STATE_DIR=str(tmp_path / "state"),
        RUNBOOK_DEMO_PORT=str(free_port()),
        SECRET_STORE_DIR=str(tmp_path / "secret-store"),  # not the operator's own
        NO_COLOR="1",
    )
    try:
        yield env
    finally:
        root = scratch_tmp / "runbook-demo"
        if (root / "run").is_dir():
            subprocess.run(
                [
                    sys.executable,
                    str(root / "bin" / "servicectl.py"),
                    "--root",
                    str(root),
                    "stop",
                ],
                capture_output=True,
                timeout=30,
                check=False,
            )


def test_the_readme_lists_the_demo_in_order() -> None:
    commands = demo_commands((ROOT / "README.md").read_text())
    lines = [c.line for c in commands]
    assert "python3 -m venv .venv" in lines
    assert any(TEST_COMMAND.match(line) for line in lines)
    subcommands = [c.key for c in runnable(commands) if c.is_runbook]
    assert subcommands == [
        "run runbooks/release.yaml",
        "drill runbooks/release.yaml",
        "run runbooks/rollback.yaml",
        "run runbooks/bootstrap_admin.yaml",
        "run runbooks/observability.yaml",
        "run runbooks/rotate_jwt.yaml",
        "audit list",
        "run examples/hello.yaml",
    ]


def test_every_demo_command_of_the_readme_works(
    scratch: dict[str, str], tmp_path: Path
) -> None:
    commands = runnable(demo_commands((ROOT / "README.md").read_text()))
    outputs: dict[str, str] = {}
    for command in commands:
        done = subprocess.run(
            ["/bin/sh", "-c", command.line],
            capture_output=True,
            text=True,
            env=scratch,
            cwd=ROOT,
            timeout=180,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{command.line}\n{output}"
        outputs[command.key] = output
    release = outputs["run runbooks/release.yaml"]
    assert "=> GO" in release and "result: succeeded" in release
    drill = outputs["drill runbooks/release.yaml"]
    assert "drill report: PASS" in drill and "recovery time" in drill
    assert "fee_rate_bps" in drill  # the real failure, not an injected one
    assert "result: succeeded" in outputs["run runbooks/rollback.yaml"]
    assert "| admin | created" in outputs["run runbooks/bootstrap_admin.yaml"]
    assert "result: succeeded" in outputs["run runbooks/observability.yaml"]
    assert "result: succeeded" in outputs["run runbooks/rotate_jwt.yaml"]
    listing = outputs["audit list"]
    for name in ("release", "rollback", "bootstrap_admin"):
        assert name in listing
    assert "hello, world" in outputs["run examples/hello.yaml"]
    state = tmp_path / "state"
    statuses = [
        r["status"] for r in audit_records(state) if r["event"] == "run.finished"
    ]
    assert statuses[:6] == [
        *["succeeded", "rolled_back", "succeeded", "succeeded", "succeeded"],
        "succeeded",
    ]
    root = tmp_path / "tmp" / "runbook-demo"
    assert (root / "current").readlink().name == "1.1.0"
    assert (root / "state" / "last_good").read_text().strip() == "1.1.0"


def test_the_command_examples_of_the_readme_work(
    scratch: dict[str, str], tmp_path: Path
) -> None:
    """The `## Commands` examples, on a fresh machine. The example run id is replaced
    by the id of a real run, and $GITHUB_STEP_SUMMARY is a scratch file."""
    summary = tmp_path / "step-summary.md"
    env = {**scratch, "GITHUB_STEP_SUMMARY": str(summary)}
    commands = demo_commands((ROOT / "README.md").read_text(), COMMANDS_HEADING)
    assert commands, "no sh block under ## Commands"
    for command in commands:
        line = command.line
        if RUN_ID.search(line):
            runs = [
                r["run_id"]
                for r in audit_records(tmp_path / "state")
                if r["event"] == "run.started"
            ]
            assert runs, f"{line}: no run to show yet"
            line = RUN_ID.sub(str(runs[-1]), line)
        done = subprocess.run(
            ["/bin/sh", "-c", line],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
    assert summary.read_text().startswith("### Plan: `release`")
