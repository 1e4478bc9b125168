"""Shared fixtures: a private state dir per test and a helper that drives the real CLI
in a subprocess, the way an operator does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> object:
        return json.loads(self.stdout)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def cli_env(state_dir: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("RUNBOOK_", "PYTEST_"))
    }
    env["RUNBOOK_STATE_DIR"] = str(state_dir)
    env["RUNBOOK_OPERATOR"] = "tester@ci"
    env["NO_COLOR"] = "1"
    return env


@pytest.fixture
def runbook_cli(cli_env: dict[str, str], tmp_path: Path) -> Callable[..., Result]:
    def run(
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        input: str | None = None,
        cwd: Path | None = None,
    ) -> Result:
        merged = dict(cli_env)
        merged.update(env or {})
        done = subprocess.run(
            [sys.executable, "-m", "runbook_engine", *args],
            capture_output=True,
            text=True,
            env=merged,
            timeout=timeout,
            input=input if input is not None else "",
            cwd=cwd or tmp_path,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture
def write_runbook(tmp_path: Path) -> Callable[..., Path]:
    def write(text: str, name: str = "rb.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    return write


def audit_records(state_dir: Path) -> list[dict[str, object]]:
    path = state_dir / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def start_run(
    env: dict[str, str], cwd: Path, *args: str, new_session: bool = False
) -> subprocess.Popen[str]:
    """`runbook ARGS` in the background, the way an operator's terminal runs it;
    read its output with ``communicate``."""
    return subprocess.Popen(
        [sys.executable, "-m", "runbook_engine", *args],
        env=env,
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=new_session,
    )


def wait_for_steps(state_dir: Path, count: int, timeout: float = 15.0) -> None:
    """Until ``count`` step.started records are durable in the audit log (and a
    moment more, so the command itself is running)."""
    import time

    log = state_dir / "audit.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().count('"step.started"') >= count:
            time.sleep(0.3)
            return
        time.sleep(0.05)
    raise AssertionError(f"{count} step(s) did not start within {timeout}s")
