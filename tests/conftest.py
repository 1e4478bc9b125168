"""Shared fixtures: a private state dir per test and a helper that drives the real CLI
in a subprocess, the way an operator does; one real PostgreSQL server per test
session with a fresh database per test, and ``backend``, which runs a test against
the file default and against PostgreSQL."""

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

from tests.support.postgres import PostgresServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

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


# -- the state backends -------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL for the whole session (a unix socket, and 127.0.0.1 for
    the TLS tests). Missing PostgreSQL is an error, never a skip."""
    server = PostgresServer(tcp=True).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def state_db(postgres_server: PostgresServer) -> str:
    """A fresh, empty database: its URL."""
    return postgres_server.create_database()


@dataclass
class Backend:
    """Where the CLI keeps state in this test: ``file`` (the state dir) or
    ``postgres`` (``url``, set as RUNBOOK_STATE_URL for the CLI)."""

    kind: str
    state_dir: Path
    url: str | None = None

    def records(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines()]

    def lines(self) -> list[bytes]:
        if self.url is None:
            path = self.state_dir / "audit.jsonl"
            return path.read_bytes().splitlines() if path.exists() else []
        import psycopg

        with psycopg.connect(self.url) as connection:
            rows = connection.execute(
                "SELECT line FROM runbook_audit ORDER BY n"
            ).fetchall()
        return [bytes(row[0]) for row in rows]

    def wait_for(self, text: str, count: int = 1, timeout: float = 15.0) -> None:
        """Until ``count`` durable records contain ``text`` (e.g. '"step.started"')."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                found = sum(text.encode() in line for line in self.lines())
            except Exception:  # the tables do not exist before the first run
                found = 0
            if found >= count:
                time.sleep(0.2)
                return
            time.sleep(0.05)
        raise AssertionError(f"{count} record(s) with {text} not seen in {timeout}s")


@pytest.fixture(params=["file", "postgres"])
def backend(
    request: pytest.FixtureRequest, cli_env: dict[str, str], state_dir: Path
) -> Backend:
    if request.param == "file":
        return Backend("file", state_dir)
    url = request.getfixturevalue("state_db")
    cli_env["RUNBOOK_STATE_URL"] = url
    return Backend("postgres", state_dir, url)
