"""Admin bootstrap (`manage.py create-admin`) and the smoke command, against a
running 1.1.0 service."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.service.deployment import Deployment


ADMIN = "root@example.test"
ADMIN_PASSWORD = "correct-horse-battery"


@pytest.fixture
def running(deployment: Deployment) -> Deployment:
    deployment.deploy("1.1.0")
    return deployment


def _create_admin(deploy: Deployment, email: str, password: str) -> str:
    result = deploy.manage(
        "current", "create-admin", "--email", email, ADMIN_PASSWORD=password
    )
    return result.stdout.splitlines()[-1]


def test_create_admin_is_idempotent(running: Deployment) -> None:
    assert _create_admin(running, ADMIN, ADMIN_PASSWORD) == "created"
    assert _create_admin(running, ADMIN, ADMIN_PASSWORD) == "unchanged"
    assert _create_admin(running, ADMIN.upper(), ADMIN_PASSWORD) == "unchanged"
    assert _create_admin(running, ADMIN, ADMIN_PASSWORD + "-2") == "updated"


def test_admin_reaches_the_queue_and_a_user_is_forbidden(running: Deployment) -> None:
    _create_admin(running, ADMIN, ADMIN_PASSWORD)
    user = running.login("plain@example.test", "password-123")
    running.post("/trade", {"symbol": "INITECH", "qty": 4}, user)

    assert running.get("/admin/queue", user)[0] == 403
    assert running.get("/admin/queue")[0] == 401
    admin = running.login(ADMIN, ADMIN_PASSWORD, register=False)
    status, body = running.get("/admin/queue", admin)
    assert status == 200
    assert [(t["email"], t["symbol"], t["qty"]) for t in body["pending"]] == [
        ("plain@example.test", "INITECH", 4)
    ]


def test_promoting_an_existing_user(running: Deployment) -> None:
    token = running.login("promote@example.test", "password-123")
    assert running.get("/admin/queue", token)[0] == 403
    assert _create_admin(running, "promote@example.test", ADMIN_PASSWORD) == "promoted"
    # The same token now passes: roles are read per request, not from the token.
    assert running.get("/admin/queue", token)[0] == 200


def test_create_admin_rejects_bad_input(deployment: Deployment) -> None:
    deployment.unpack("1.1.0")
    deployment.manage("1.1.0", "migrate", "--to-release")
    cases = [
        (ADMIN, "", "ADMIN_PASSWORD is not set"),
        (ADMIN, "short", "at least 12 characters"),
        ("not-an-email", ADMIN_PASSWORD, "valid address"),
    ]
    for email, password, message in cases:
        result = deployment.manage(
            "1.1.0",
            "create-admin",
            "--email",
            email,
            check=False,
            ADMIN_PASSWORD=password,
        )
        assert (result.returncode, result.stdout) == (2, ""), result
        assert message in result.stderr


def test_smoke_passes_with_the_admin_check(running: Deployment) -> None:
    _create_admin(running, ADMIN, ADMIN_PASSWORD)
    result = running.manage(
        "current",
        "smoke",
        "--url",
        running.url(""),
        "--admin-email",
        ADMIN,
        "--admin-password-env",
        "BOOTSTRAP_PW",
        BOOTSTRAP_PW=ADMIN_PASSWORD,
    )
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [
        "ok   health",
        "ok   register",
        "ok   login",
        "ok   profile",
        "ok   auth-required",
        "ok   wallet",
        "ok   trade",
        "ok   admin-queue-forbidden",
        "ok   admin-queue",
    ]
    assert lines[-1] == "smoke passed: 9 checks"


def test_smoke_names_the_failing_check_when_nothing_listens(
    deployment: Deployment,
) -> None:
    deployment.unpack("1.1.0")
    result = deployment.manage(
        "1.1.0", "smoke", "--url", deployment.url(""), check=False
    )
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == "smoke failed: health"
