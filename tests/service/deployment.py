"""The example service under test: release artefacts built by the real
`build.py`, a deploy root driven by the real `servicectl.py` and `manage.py` in
subprocesses, and a small urllib client. The fixtures are in conftest.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

SERVICE_DIR = Path(__file__).resolve().parents[2] / "examples" / "service"
BUILD = SERVICE_DIR / "build.py"
SERVICECTL = SERVICE_DIR / "servicectl.py"
VERSIONS = ("1.0.0", "1.1.0", "1.2.0")
JWT_SECRET = "test-secret-" + "x" * 32


def build_artifacts(out: Path) -> Path:
    """Every release as out/example-service-V.tar.gz plus out/SHA256SUMS."""
    subprocess.run(
        [sys.executable, str(BUILD), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return out


def artifact(artifacts: Path, version: str) -> Path:
    return artifacts / f"example-service-{version}.tar.gz"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(
    method: str, url: str, payload: Any = None, token: str | None = None
) -> tuple[int, Any]:
    """(status, decoded JSON body) of one request; errors are answers too."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


class Deployment:
    """One deploy root: ROOT/releases, ROOT/current, the database and a port."""

    def __init__(self, root: Path, artifacts: Path) -> None:
        self.root = root
        self.artifacts = artifacts
        self.port = free_port()
        self.db_path = root / "data" / "app.db"
        self.env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{self.db_path}",
            "JWT_SECRET": JWT_SECRET,
            "APP_ENV": "development",
            "CORS_ORIGINS": "https://app.example.test",
            "PASSWORD_HASH_ITERATIONS": "1000",
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def run(
        self, *argv: str | Path, check: bool = True, **env: str
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, *map(str, argv)],
            capture_output=True,
            text=True,
            env={**self.env, **env},
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{argv} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def ctl(
        self, *args: str, check: bool = True, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return self.run(SERVICECTL, "--root", self.root, *args, check=check, **env)

    def manage(
        self, release: str, *args: str, check: bool = True, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run `manage.py` of ROOT/releases/<release> (or ROOT/current)."""
        base = self.root / (
            "current" if release == "current" else f"releases/{release}"
        )
        return self.run(base / "app" / "manage.py", *args, check=check, **env)

    def unpack(
        self, version: str, *extra: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`servicectl unpack` of the built artefact, checked against SHA256SUMS."""
        archive = str(artifact(self.artifacts, version))
        sums = str(self.artifacts / "SHA256SUMS")
        return self.ctl(
            "unpack", version, "--archive", archive, "--sums", sums, *extra, check=check
        )

    def deploy(self, version: str) -> None:
        """unpack, migrate up, switch, (re)start: the happy path of a release."""
        self.unpack(version)
        self.manage(version, "migrate", "--to-release")
        self.ctl("switch", version)
        self.ctl("restart", "--port", str(self.port))

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        return http("GET", self.url(path), token=token)

    def post(
        self, path: str, payload: Any, token: str | None = None
    ) -> tuple[int, Any]:
        return http("POST", self.url(path), payload, token=token)

    def login(self, email: str, password: str, *, register: bool = True) -> str:
        if register:
            self.post("/register", {"email": email, "password": password})
        status, body = self.post("/login", {"email": email, "password": password})
        assert status == 200, body
        return str(body["token"])

    def service_pid(self) -> int | None:
        pid_file = self.root / "run" / "service.pid"
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        return int(text) if text.isdigit() else None

    def teardown(self) -> None:
        pid = self.service_pid()
        self.ctl("stop", "--grace", "5s", check=False)
        if pid is not None and _alive(pid):
            os.killpg(pid, signal.SIGKILL)
            pytest.fail(f"service pid {pid} survived `servicectl stop`")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def wait_until_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# (sample name, labels) -> value, from one scrape of /metrics
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(service: Deployment) -> tuple[dict[str, Metric], Samples]:
    """GET /metrics, read with Prometheus' own parser: (families, samples)."""
    with urllib.request.urlopen(service.url("/metrics"), timeout=5) as answer:
        assert (
            answer.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        )
        text = answer.read().decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in families.values()
        for sample in family.samples
    }
    return families, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)
