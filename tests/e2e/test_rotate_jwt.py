"""The JWT secret across environments, for real: a development secret is refused by
preflight in production with the exact rotate_jwt.yaml command, that command
rotates it (old tokens accepted during the rotation, refused after, new tokens with
the new kid), a drill of a second rotation rolls back to the stored secret, and no
secret value ever reaches the console, the report or the audit log."""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
from typing import TYPE_CHECKING

import pytest

from tests.conftest import ROOT
from tests.e2e.service_targets import RUNBOOKS, release, statuses

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.conftest import Result
    from tests.e2e.service_targets import Target

pytestmark = pytest.mark.e2e


def kid_of(token: str) -> str:
    segment = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(segment + "=="))["kid"])


def key_id(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def running_kids(target: Target) -> tuple[str, list[str]]:
    """jwt_kid / jwt_previous_kids of the service's last start."""
    lines = (target.root / "log" / "service.log").read_text().splitlines()
    last = [json.loads(line) for line in lines if '"listening"' in line][-1]
    return last["jwt_kid"], last["jwt_previous_kids"]


def preflight_in_production(rb: Callable[..., Result], target: Target) -> Result:
    return rb(
        "check", str(RUNBOOKS / "preflight.yaml"), "-e", "version=1.1.0",
        "-e", "env=production", *target.params,
        "-e", "cors_origins=https://app.example.test",
    )  # fmt: skip


def test_a_development_secret_is_refused_in_production_and_rotated_away(
    rb: Callable[..., Result], target: Target, tmp_path: Path, state_dir: Path
) -> None:
    assert release(rb, target, "1.1.0").code == 0
    dev_secret = (target.root / "jwt_secret").read_text().strip()
    before = target.new_user_token("before@example.test")
    assert kid_of(before) == key_id(dev_secret) == running_kids(target)[0]

    refused = preflight_in_production(rb, target)
    assert refused.code == 4, refused.output
    assert "used in development on this target" in refused.stderr
    command = (
        f"runbook run {ROOT}/runbooks/rotate_jwt.yaml -e env=production -e target=local"
        f" -e root={target.root} -e port={target.port} -e grace=0s"
    )
    assert command in refused.stderr

    report = tmp_path / "rotate.json"
    rotated = rb(
        *shlex.split(command)[1:], "--output", "json", "--report", f"json:{report}"
    )
    assert rotated.code == 0, rotated.output
    assert set(statuses(rotated).values()) <= {"ok", "changed"}
    store = tmp_path / "secret-store"
    new_secret = (store / "jwt_secret").read_text()
    assert len(new_secret) == 64 and int(new_secret, 16) >= 0
    assert not (store / "jwt_previous_secrets").exists()
    assert running_kids(target) == (key_id(new_secret), [])
    assert (
        "still accepted; new tokens signed with kid " + key_id(new_secret)
        in rotated.stderr
    )
    assert target.get("/profile", before)[0] == 401  # dropped after the grace period
    after = target.login("before@example.test", "pw-12345678")
    assert kid_of(after) == key_id(new_secret)
    assert target.get("/profile", after)[0] == 200
    assert list((target.root / "run").glob("rotate-*.json")) == []

    # neither secret in anything the runs wrote
    written = (
        rotated.output + report.read_text() + (state_dir / "audit.jsonl").read_text()
    )
    written += (target.root / "log" / "service.log").read_text()
    for secret in (dev_secret, new_secret):
        assert secret not in written
    fit = preflight_in_production(rb, target)
    assert fit.code == 0, fit.output
    assert "JWT secret from the secret store is fit" in fit.stderr

    # a second rotation, from the store this time, fails at its last step: rolled back
    drill = rb(
        "drill", str(RUNBOOKS / "rotate_jwt.yaml"), *target.place,
        "-e", "env=production", "-e", "grace=1s", "--fail-at", "drop_old",
    )  # fmt: skip
    assert drill.code == 0, drill.output
    assert "drill report: PASS" in drill.stderr
    assert "old token (kid " + key_id(new_secret) + ") still accepted" in drill.stderr
    assert (store / "jwt_secret").read_text() == new_secret
    assert not (store / "jwt_previous_secrets").exists()
    assert running_kids(target) == (key_id(new_secret), [])
    assert target.get("/profile", after)[0] == 200
    assert new_secret not in drill.output + (state_dir / "audit.jsonl").read_text()


def test_a_rotation_stopped_half_way_is_rolled_back_to_the_old_key_later(
    rb: Callable[..., Result],
    target: Target,
    tmp_path: Path,
    state_dir: Path,
    cli_env: dict[str, str],
) -> None:
    """`runbook rollback` reads the secrets again, when the store's jwt_secret is
    already the new one: the undos must still put the old key back, and a finished
    rotation's undos must refuse without changing anything."""
    import signal
    import time

    from tests.conftest import audit_records, start_run

    assert release(rb, target, "1.1.0").code == 0
    store = tmp_path / "secret-store"
    store.mkdir(mode=0o700)
    first = rb(
        "run", str(RUNBOOKS / "rotate_jwt.yaml"), *target.place, "-e", "grace=0s"
    )
    assert first.code == 0, first.output  # the dev secret moves into the store
    first_id = first.stderr.split(", run ", 1)[1].split(")", 1)[0]
    old_secret = (store / "jwt_secret").read_text()
    before = target.new_user_token("before@example.test")
    assert sorted(p.name for p in store.iterdir()) == ["jwt_secret"]

    rotation = start_run(
        cli_env, ROOT, "run", str(RUNBOOKS / "rotate_jwt.yaml"), *target.place,
        "-e", "grace=60s",
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not any(
        r["event"] == "step.started"
        and r["step"] == "grace"
        and r["run_id"] != first_id
        for r in audit_records(state_dir)
    ):
        assert time.monotonic() < deadline, "the grace step never started"
        time.sleep(0.1)
    rotation.send_signal(signal.SIGTERM)
    _, stderr = rotation.communicate(timeout=60)
    assert rotation.returncode == 143, stderr
    run_id = audit_records(state_dir)[-1]["run_id"]
    new_secret = (store / "jwt_secret").read_text()
    assert new_secret != old_secret
    assert running_kids(target) == (key_id(new_secret), [key_id(old_secret)])

    rolled = rb("rollback", run_id)
    assert rolled.code == 0, rolled.output
    assert running_kids(target) == (key_id(old_secret), [])
    assert (store / "jwt_secret").read_text() == old_secret
    assert sorted(p.name for p in store.iterdir()) == ["jwt_secret"]
    assert target.get("/profile", before)[0] == 200  # nobody was logged out
    assert list((target.root / "run").glob("rotate-*.json")) == []
    written = rolled.output + (state_dir / "audit.jsonl").read_text()
    assert old_secret not in written and new_secret not in written

    # a rotation that finished is not rolled back: its undos refuse, changing nothing
    done = rb("run", str(RUNBOOKS / "rotate_jwt.yaml"), *target.place, "-e", "grace=0s")
    assert done.code == 0, done.output
    current = (store / "jwt_secret").read_text()
    refused = rb("rollback", done.stderr.split(", run ", 1)[1].split(")", 1)[0])
    assert refused.code == 3, refused.output
    assert "its secrets are no longer in the store" in refused.stderr
    assert (store / "jwt_secret").read_text() == current
    assert running_kids(target) == (key_id(current), [])
