"""The release artefacts themselves: metadata, their own unit tests, the frontend
build, and what the built frontend and CORS look like over real HTTP."""

from __future__ import annotations

import compileall
import json
import re
import shutil
import subprocess
import sys
import urllib.request
from typing import TYPE_CHECKING

import pytest
from conftest import RELEASES, Deployment

if TYPE_CHECKING:
    from pathlib import Path

VERSIONS = ("1.0.0", "1.1.0", "1.2.0")


@pytest.mark.parametrize("version", VERSIONS)
def test_release_metadata_matches_its_migrations(version: str) -> None:
    release = RELEASES / version
    assert (release / "VERSION").read_text().strip() == version
    schema = int((release / "SCHEMA_VERSION").read_text())
    ups = sorted(p.name for p in (release / "migrations").glob("*.up.sql"))
    downs = sorted(p.name for p in (release / "migrations").glob("*.down.sql"))
    assert [int(name[:4]) for name in ups] == list(range(1, schema + 1))
    assert [n.replace(".up.", ".down.") for n in ups] == downs


def test_every_release_passes_its_own_unit_tests(tmp_path: Path) -> None:
    """What preflight runs: compileall, then `python -m unittest discover -s tests`."""
    running = {}
    for version in VERSIONS:
        copy = tmp_path / version
        shutil.copytree(
            RELEASES / version, copy, ignore=shutil.ignore_patterns("__pycache__")
        )
        assert compileall.compile_dir(copy, quiet=1)
        running[version] = subprocess.Popen(
            [sys.executable, "-m", "unittest", "discover", "-s", "tests"],
            cwd=copy,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    for version, process in running.items():
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, f"{version} unit tests failed:\n{output}"
        assert re.search(r"^OK$", output, re.MULTILINE), output


def test_built_frontend_is_served_with_cors(deployment: Deployment) -> None:
    deployment.ctl("unpack", "1.1.0", "--from", str(RELEASES))
    release = deployment.root / "releases" / "1.1.0"
    built = deployment.run(release / "frontend" / "build.py")
    assert built.stdout.startswith(f"built {release / 'frontend' / 'dist'}")
    manifest = json.loads((release / "frontend" / "dist" / "manifest.json").read_text())
    deployment.manage("1.1.0", "migrate", "--to-release")
    deployment.ctl("switch", "1.1.0")
    deployment.ctl("start", "--port", str(deployment.port))

    with urllib.request.urlopen(deployment.url("/"), timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/html")
        html = response.read().decode()
    assert f'src="/assets/{manifest["app_js"]}"' in html
    asset_url = deployment.url(f"/assets/{manifest['app_js']}")
    with urllib.request.urlopen(asset_url, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/javascript")

    request = urllib.request.Request(deployment.url("/health"))
    request.add_header("Origin", "https://app.example.test")
    with urllib.request.urlopen(request, timeout=5) as response:
        allowed = response.headers["Access-Control-Allow-Origin"]
    assert allowed == "https://app.example.test"
    request = urllib.request.Request(deployment.url("/health"))
    request.add_header("Origin", "https://evil.example.test")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Access-Control-Allow-Origin"] is None


def test_release_without_frontend_answers_json_at_root(deployment: Deployment) -> None:
    deployment.deploy("1.0.0")
    status, body = deployment.get("/")
    assert (status, body) == (200, {"service": "example-service", "version": "1.0.0"})
