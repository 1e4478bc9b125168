"""Deploy, upgrade, break and roll back the example service for real: a running
process on a free port, driven by servicectl.py and each release's manage.py."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from tests.service.deployment import scrape, value

if TYPE_CHECKING:
    from tests.service.deployment import Deployment


def _tables(deploy: Deployment) -> set[str]:
    with sqlite3.connect(deploy.db_path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        names = {row[0] for row in rows}
    conn.close()
    return names


def test_fresh_install_of_1_0_0_is_healthy(deployment: Deployment) -> None:
    deployment.deploy("1.0.0")

    assert deployment.get("/health") == (200, {"status": "ok", "version": "1.0.0"})
    status, body = deployment.get("/test-db")
    assert (status, body["schema_version"], body["expected_schema_version"]) == (
        200,
        1,
        1,
    )
    status_line = deployment.ctl("status").stdout.strip()
    assert status_line.startswith("running pid=")
    assert status_line.endswith(f"port={deployment.port} version=1.0.0")


def test_upgrade_break_and_roll_back(deployment: Deployment) -> None:
    deployment.deploy("1.0.0")
    deployment.deploy("1.1.0")
    assert deployment.get("/health")[1]["version"] == "1.1.0"
    assert deployment.get("/test-db")[1]["schema_version"] == 2
    token = deployment.login("keeper@example.test", "password-123")
    assert deployment.post("/trade", {"symbol": "ACME", "qty": 2}, token)[0] == 201

    # 1.2.0's migration applies, the process is up, but /test-db fails.
    deployment.deploy("1.2.0")
    assert deployment.get("/health") == (200, {"status": "ok", "version": "1.2.0"})
    status, body = deployment.get("/test-db")
    assert (status, body["error"], body["schema_version"]) == (503, "query_failed", 3)
    assert "fee_rate_bps" in body["message"]
    assert value(scrape(deployment)[1], "db_errors_total", kind="query") == 1
    smoke = deployment.manage(
        "current", "smoke", "--url", deployment.url(""), check=False
    )
    assert smoke.returncode == 1
    assert smoke.stdout.splitlines()[-1] == "smoke failed: trade"

    # Roll back the way rollback.yaml does: switch, migrate down, restart.
    assert deployment.ctl("switch", "1.1.0").stdout.strip() == "1.2.0"
    migrate = deployment.manage("current", "migrate", "--to-release")
    assert migrate.stdout.splitlines() == [
        "applied down 0003_trade_fees",
        "schema version 3 -> 2",
    ]
    deployment.ctl("restart")
    assert deployment.get("/health")[1]["version"] == "1.1.0"
    assert deployment.get("/test-db")[0] == 200
    assert "fee_schedule" not in _tables(deployment)
    assert deployment.manage("current", "schema-version").stdout.strip() == "2"

    # Data written under 1.1.0 survived the round trip.
    status, wallet = deployment.get("/wallet", token)
    assert (status, wallet["positions"]) == (200, {"ACME": 2})


def test_migrate_down_with_the_newer_release_files(deployment: Deployment) -> None:
    deployment.deploy("1.2.0")
    first = deployment.manage("1.2.0", "migrate", "--to", "2")
    assert first.stdout.splitlines()[-1] == "schema version 3 -> 2"
    again = deployment.manage("1.2.0", "migrate", "--to", "2")
    assert again.stdout.strip() == "schema already at version 2"
    status, body = deployment.get("/test-db")
    assert (status, body["error"]) == (503, "schema_mismatch")


def test_server_refuses_to_start_without_config(deployment: Deployment) -> None:
    deployment.unpack("1.0.0")
    deployment.ctl("switch", "1.0.0")
    result = deployment.ctl(
        "start",
        "--port",
        str(deployment.port),
        "--timeout",
        "5s",
        check=False,
        DATABASE_URL="",
    )
    assert result.returncode == 1
    assert "DATABASE_URL is not set" in result.stderr
    assert deployment.ctl("status", check=False).returncode == 3
