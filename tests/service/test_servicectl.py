"""servicectl.py on its own: releases, the `current` link, process control and
backups, with the exit codes and one-line outputs the runbooks rely on."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from typing import TYPE_CHECKING

from tests.service.deployment import JWT_SECRET, SERVICECTL, artifact, wait_until_gone

if TYPE_CHECKING:
    from pathlib import Path

    from tests.service.deployment import Deployment


def test_unpack_refuses_to_overwrite_unless_forced(deployment: Deployment) -> None:
    first = deployment.unpack("1.0.0")
    assert first.stdout.strip() == str(deployment.root / "releases" / "1.0.0")
    again = deployment.unpack("1.0.0", check=False)
    assert again.returncode == 1
    assert "already exists" in again.stderr
    (deployment.root / "releases" / "1.0.0" / "marker").write_text("x")
    deployment.unpack("1.0.0", "--force")
    assert not (deployment.root / "releases" / "1.0.0" / "marker").exists()


def test_unpack_verifies_the_checksum_before_touching_the_root(
    deployment: Deployment, tmp_path: Path
) -> None:
    tampered = tmp_path / "example-service-1.1.0.tar.gz"
    data = bytearray(artifact(deployment.artifacts, "1.1.0").read_bytes())
    data[-40] ^= 0xFF
    tampered.write_bytes(bytes(data))
    sums = str(deployment.artifacts / "SHA256SUMS")
    refused = deployment.ctl(
        "unpack", "1.1.0", "--archive", str(tampered), "--sums", sums, check=False
    )
    assert refused.returncode == 1
    assert "checksum mismatch" in refused.stderr
    assert not (deployment.root / "releases").exists()
    missing = deployment.ctl(
        "unpack", "1.1.0", "--archive", str(tmp_path / "nope.tar.gz"),
        "--sha256", "0" * 64, check=False,
    )  # fmt: skip
    assert missing.returncode == 1 and "no release artefact" in missing.stderr
    unlisted = deployment.ctl(
        "unpack", "1.1.0", "--archive", str(tampered), "--sums", str(tmp_path / "x"),
        check=False,
    )  # fmt: skip
    assert unlisted.returncode == 1 and "cannot read" in unlisted.stderr


def test_unpack_refuses_an_archive_of_another_version(deployment: Deployment) -> None:
    archive = artifact(deployment.artifacts, "1.0.0")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    wrong = deployment.ctl(
        "unpack", "1.1.0", "--archive", str(archive), "--sha256", digest, check=False
    )
    assert wrong.returncode == 1
    assert "does not hold one directory 1.1.0/" in wrong.stderr
    bad = deployment.ctl(
        "unpack", "../etc", "--archive", str(archive), "--sha256", digest, check=False
    )
    assert bad.returncode == 2
    assert deployment.ctl("list").stdout == ""


def test_switch_current_list_and_remove(deployment: Deployment) -> None:
    assert deployment.ctl("current").stdout.strip() == "none"
    for version in ("1.1.0", "1.0.0"):
        deployment.unpack(version)
    assert deployment.ctl("switch", "1.0.0").stdout.strip() == "none"
    assert deployment.ctl("switch", "1.1.0").stdout.strip() == "1.0.0"
    assert deployment.ctl("current").stdout.strip() == "1.1.0"
    assert (deployment.root / "current").readlink().as_posix() == "releases/1.1.0"
    assert deployment.ctl("list").stdout.split() == ["1.0.0", "1.1.0"]

    refused = deployment.ctl("remove", "1.1.0", check=False)
    assert refused.returncode == 1
    assert "current release" in refused.stderr
    assert deployment.ctl("remove", "1.0.0").stdout.startswith("removed ")
    assert deployment.ctl("remove", "1.0.0").stdout.startswith("absent ")
    missing = deployment.ctl("switch", "1.0.0", check=False)
    assert missing.returncode == 1
    assert deployment.ctl("current").stdout.strip() == "1.1.0"


def test_last_known_good(deployment: Deployment) -> None:
    assert deployment.ctl("last-good").stdout.strip() == "none"
    assert deployment.ctl("mark-good", "1.0.0", check=False).returncode == 1
    deployment.unpack("1.0.0")
    deployment.ctl("mark-good", "1.0.0")
    assert deployment.ctl("last-good").stdout.strip() == "1.0.0"


def test_start_stop_restart_status(deployment: Deployment) -> None:
    assert deployment.ctl("status", check=False).returncode == 3
    deployment.deploy("1.0.0")
    pid = deployment.service_pid()
    assert pid is not None
    again = deployment.ctl("start")
    assert again.stdout.startswith(f"already running pid={pid}")

    restarted = deployment.ctl("restart").stdout.splitlines()
    assert restarted[0] == f"stopped pid={pid}"
    assert restarted[1].endswith(f"port={deployment.port} version=1.0.0")
    assert wait_until_gone(pid)
    new_pid = deployment.service_pid()
    assert new_pid not in (None, pid)

    assert deployment.ctl("stop").stdout.strip() == f"stopped pid={new_pid}"
    assert wait_until_gone(new_pid)
    assert deployment.ctl("stop").stdout.strip() == "not running"
    assert deployment.ctl("status", check=False).stdout.strip() == "not running"


def test_development_starts_remember_their_secrets_by_fingerprint(
    deployment: Deployment,
) -> None:
    deployment.deploy("1.0.0")
    prints = deployment.root / "state" / "dev_jwt_fingerprints"
    assert prints.stat().st_mode & 0o777 == 0o600
    digest = hashlib.sha256(JWT_SECRET.encode()).hexdigest()
    assert prints.read_text() == f"{digest}\n"
    old = "previous-" + "p" * 30
    deployment.ctl("restart", JWT_PREVIOUS_SECRETS=old)  # no duplicate, one more
    digests = prints.read_text().split()
    assert sorted(digests) == sorted([digest, hashlib.sha256(old.encode()).hexdigest()])
    assert JWT_SECRET not in prints.read_text()
    production = {
        "APP_ENV": "production",
        "JWT_SECRET": "prod-" + "q" * 40,
        "PASSWORD_HASH_ITERATIONS": "120000",
    }
    deployment.ctl("restart", **production)
    assert prints.read_text().split() == digests


def test_stale_pid_file_is_tolerated(deployment: Deployment) -> None:
    (deployment.root / "run").mkdir(parents=True)
    (deployment.root / "run" / "service.pid").write_text("999999\n")
    assert deployment.ctl("status", check=False).returncode == 3
    assert deployment.ctl("stop").stdout.strip() == "not running"
    assert not (deployment.root / "run" / "service.pid").exists()


def test_wait_healthy(deployment: Deployment) -> None:
    started = time.monotonic()
    down = deployment.ctl(
        "wait-healthy",
        "--port",
        str(deployment.port),
        "--timeout",
        "500ms",
        check=False,
    )
    assert down.returncode == 1
    assert "not healthy after 0.5s" in down.stderr
    assert time.monotonic() - started < 10
    deployment.deploy("1.0.0")
    ok = deployment.ctl("wait-healthy", "--path", "/test-db", "--timeout", "5s")
    assert ok.stdout.startswith(f"healthy {deployment.url('/test-db')}")
    wrong = deployment.ctl(
        "wait-healthy", "--version", "1.1.0", "--timeout", "300ms", check=False
    )
    assert wrong.returncode == 1


def test_backup_db_is_a_consistent_copy(deployment: Deployment) -> None:
    deployment.unpack("1.1.0")
    deployment.manage("1.1.0", "migrate", "--to-release")
    path = deployment.ctl("backup-db").stdout.strip()
    assert path.startswith(str(deployment.root / "backups" / "app-"))
    second = deployment.ctl("backup-db").stdout.strip()
    assert second != path
    with sqlite3.connect(path) as conn:
        version = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    conn.close()
    assert version == (2,)


def test_backup_db_needs_a_database(deployment: Deployment) -> None:
    unset = deployment.ctl("backup-db", check=False, DATABASE_URL="")
    assert unset.returncode == 2
    missing = deployment.ctl("backup-db", check=False)
    assert missing.returncode == 1
    assert "cannot open" in missing.stderr


def test_root_is_required(deployment: Deployment) -> None:
    result = deployment.run(SERVICECTL, "current", check=False)
    assert result.returncode == 2
    assert "--root is required" in result.stderr
