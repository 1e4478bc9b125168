"""The release artefacts: built by build.py from src/ and the per-release overlays,
deterministic, listed in SHA256SUMS; their metadata, their own unit tests, the
deliberate bug of 1.2.0, the frontend build, and what the built frontend and CORS
look like over real HTTP."""

from __future__ import annotations

import compileall
import json
import re
import subprocess
import sys
import tarfile
import urllib.request
from typing import TYPE_CHECKING

import pytest

from tests.service.deployment import BUILD, VERSIONS, artifact, build_artifacts

if TYPE_CHECKING:
    from pathlib import Path

    from tests.service.deployment import Deployment


def _members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive, "r:gz") as tar:
        return {info.name: info for info in tar.getmembers()}


def _read(archive: Path, name: str) -> str:
    with tarfile.open(archive, "r:gz") as tar:
        member = tar.extractfile(name)
        assert member is not None, name
        return member.read().decode()


def test_builds_are_byte_identical_and_listed_for_sha256sum(
    artifacts: Path, tmp_path: Path
) -> None:
    again = build_artifacts(tmp_path / "again")
    for version in VERSIONS:
        first = artifact(artifacts, version).read_bytes()
        assert artifact(again, version).read_bytes() == first, version
    assert (again / "SHA256SUMS").read_text() == (artifacts / "SHA256SUMS").read_text()
    check = subprocess.run(
        ["sha256sum", "--check", "--strict", "SHA256SUMS"],
        cwd=artifacts, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.splitlines() == [
        f"example-service-{version}.tar.gz: OK" for version in VERSIONS
    ]


def test_an_unknown_release_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BUILD), "--out", str(tmp_path), "9.9.9"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("build failed: no release '9.9.9'")
    assert "1.0.0, 1.1.0, 1.2.0" in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_archive_entries_are_sorted_with_fixed_times_and_owner(artifacts: Path) -> None:
    with tarfile.open(artifact(artifacts, "1.2.0"), "r:gz") as tar:
        infos = tar.getmembers()
    names = [info.name for info in infos]
    assert names == sorted(names) and names[0] == "1.2.0"
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname) for i in infos} == {
        (1_767_225_600, 0, 0, "", "")
    }
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if "/dist" in n]


@pytest.mark.parametrize("version", VERSIONS)
def test_release_metadata_matches_its_migrations(artifacts: Path, version: str) -> None:
    archive = artifact(artifacts, version)
    assert _read(archive, f"{version}/VERSION").strip() == version
    schema = int(_read(archive, f"{version}/SCHEMA_VERSION"))
    names = _members(archive)
    ups = sorted(n for n in names if n.endswith(".up.sql"))
    downs = sorted(n for n in names if n.endswith(".down.sql"))
    prefix = f"{version}/migrations/"
    assert [int(n.removeprefix(prefix)[:4]) for n in ups] == list(range(1, schema + 1))
    assert [n.replace(".up.", ".down.") for n in ups] == downs


def test_each_release_carries_only_its_own_changes(artifacts: Path) -> None:
    old, wallets, fees = (_members(artifact(artifacts, v)) for v in VERSIONS)
    assert "1.0.0/frontend/build.py" not in old
    assert "1.1.0/frontend/build.py" in wallets
    assert "1.1.0/app/wallets.py" in wallets and "1.1.0/app/fees.py" not in wallets
    assert "1.2.0/app/fees.py" in fees
    assert "1.2.0/frontend/src/notice.txt" in fees
    assert "1.1.0/frontend/src/notice.txt" not in wallets


def test_the_deliberate_bug_of_1_2_0_is_in_its_artefact(artifacts: Path) -> None:
    archive = artifact(artifacts, "1.2.0")
    migration = _read(archive, "1.2.0/migrations/0003_trade_fees.up.sql")
    code = _read(archive, "1.2.0/app/fees.py")
    assert (
        "fee_bps INTEGER" in migration
        and "fee_rate_bps" not in migration.split("CREATE TABLE")[1]
    )
    assert "fee_rate_bps FROM fee_schedule" in code
    fixture = _read(archive, "1.2.0/tests/fixtures/0003_trade_fees.sql")
    assert "fee_rate_bps INTEGER" in fixture  # why its unit tests still pass


# tarfile's extraction filters came with Python 3.11.4 (Debian 12 has 3.11.2)
SAFE = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def test_every_release_passes_its_own_unit_tests(
    artifacts: Path, tmp_path: Path
) -> None:
    """What preflight runs: compileall, then `python -m unittest discover -s tests`."""
    running = {}
    for version in VERSIONS:
        with tarfile.open(artifact(artifacts, version), "r:gz") as tar:
            tar.extractall(tmp_path, **SAFE)
        tree = tmp_path / version
        assert compileall.compile_dir(tree, quiet=1)
        running[version] = subprocess.Popen(
            [sys.executable, "-m", "unittest", "discover", "-s", "tests"],
            cwd=tree,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    for version, process in running.items():
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, f"{version} unit tests failed:\n{output}"
        assert re.search(r"^OK$", output, re.MULTILINE), output


def test_built_frontend_is_served_with_cors(deployment: Deployment) -> None:
    deployment.unpack("1.1.0")
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
