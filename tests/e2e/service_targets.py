"""The example service's deploy roots for the procedure tests: a Target (root, port,
release artefacts), the `runbook` CLI from the repository root, and helpers that
read a run's JSON summary. The fixtures are registered by tests/e2e/conftest.py.

Every test has its own deploy root, port and state dir, and stops the service
processes it started (``servicectl stop``) in a finalizer."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import ROOT
from tests.service.deployment import build_artifacts

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.conftest import Result
    from tests.e2e.conftest import Fleet

RUNBOOKS = ROOT / "runbooks"
SERVICECTL = ROOT / "examples" / "service" / "servicectl.py"
STRONG_SECRET = "Zq8vN3pK7xW2mR5tY9bL4cH6jF1gD0sA-prod"
ADMIN_PASSWORD = "a-long-admin-password-42"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_service(root: Path) -> None:
    if (root / "run").is_dir():
        subprocess.run(
            [sys.executable, str(SERVICECTL), "--root", str(root), "stop"],
            capture_output=True,
            timeout=30,
            check=False,
        )


class Target:
    """One deploy root on the local machine, with its port and the release
    artefacts the runbooks read (built into a temp dir once per module)."""

    def __init__(self, root: Path, port: int, artifacts: Path) -> None:
        self.root = root
        self.port = port
        self.artifacts = artifacts

    @property
    def params(self) -> list[str]:
        return [
            "-e", f"root={self.root}", "-e", f"port={self.port}",
            "-e", f"artifacts={self.artifacts}",
        ]  # fmt: skip

    @property
    def place(self) -> list[str]:
        """The params of runbooks that read no artefact."""
        return ["-e", f"root={self.root}", "-e", f"port={self.port}"]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        return http(self.url(path), token=token)

    def post(
        self, path: str, body: object, token: str | None = None
    ) -> tuple[int, Any]:
        return http(self.url(path), body=body, token=token)

    def schema_version(self) -> int:
        conn = sqlite3.connect(f"file:{self.root / 'app.db'}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        finally:
            conn.close()
        return int(row[0] or 0)

    def current(self) -> str:
        return (self.root / "current").readlink().name

    def last_good(self) -> str:
        return (self.root / "state" / "last_good").read_text().strip()

    def login(self, email: str, password: str) -> str:
        status, body = self.post("/login", {"email": email, "password": password})
        assert status == 200, body
        return str(body["token"])

    def new_user_token(self, email: str) -> str:
        status, body = self.post(
            "/register", {"email": email, "password": "pw-12345678"}
        )
        assert status == 201, body
        return self.login(email, "pw-12345678")


def http(url: str, *, body: object = None, token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture
def clean_env(cli_env: dict[str, str], tmp_path: Path) -> None:
    """The procedures read these from the operator's environment: start without, and
    with an empty secret store of the test's own."""
    for name in (
        "JWT_SECRET",
        "JWT_PREVIOUS_SECRETS",
        "BOOTSTRAP_ADMIN_PASSWORD",
        "RUNBOOK_DEMO_PORT",
        "GITHUB_TOKEN",
    ):
        cli_env.pop(name, None)
    cli_env["SECRET_STORE_DIR"] = str(tmp_path / "secret-store")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_artifacts(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture
def target(tmp_path: Path, artifacts: Path) -> Iterator[Target]:
    deployed = Target(tmp_path / "srv", free_port(), artifacts)
    try:
        yield deployed
    finally:
        stop_service(deployed.root)


@pytest.fixture
def rb(runbook_cli: Callable[..., Result], clean_env: None) -> Callable[..., Result]:
    """`runbook ...` from the repository root, as the README runs it."""

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        return runbook_cli(*args, env=env, cwd=ROOT)

    return run


def release(
    rb: Callable[..., Result],
    target: Target,
    version: str,
    *extra: str,
    env: dict[str, str] | None = None,
) -> Result:
    return rb(
        "run",
        str(RUNBOOKS / "release.yaml"),
        "-e",
        f"version={version}",
        *target.params,
        "--output",
        "json",
        *extra,
        env=env,
    )


def statuses(result: Result) -> dict[str, str]:
    summary = result.json()
    assert isinstance(summary, dict)
    return {s["step"]: s["status"] for s in summary["steps"]}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root (but the service's log) with its size and mtime."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.parent.name != "log"
    }


@pytest.fixture
def two_hosts(
    fleet: Fleet, tmp_path: Path, artifacts: Path
) -> Iterator[tuple[Path, list[Target]]]:
    """An inventory of two fleet hosts, each with its own root and port."""
    targets = [
        Target(fleet.home(index) / f"svc-{tmp_path.name}", free_port(), artifacts)
        for index in range(2)
    ]
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
    lines = [
        "# yaml-language-server: $schema=../../schemas/inventory.schema.json",
        "version: 1",
        f"defaults: {{user: {user}, identity_file: {fleet.key.path},"
        f" known_hosts: {fleet.known_hosts}, connect_timeout: 5s}}",
        "hosts:",
    ]
    for server, deployed in zip(fleet.servers, targets, strict=False):
        lines.append(
            f"  {server.name}: {{address: 127.0.0.1, port: {server.port}, vars:"
            f" {{root: '{deployed.root}', port: {deployed.port},"
            f" python: '{sys.executable}'}}}}"
        )
    names = ", ".join(s.name for s in fleet.servers[:2])
    lines += ["groups:", f"  web: [{names}]"]
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("\n".join(lines) + "\n")
    try:
        yield inventory, targets
    finally:
        for deployed in targets:
            stop_service(deployed.root)
