"""`runbook rollback RUN_ID` of real releases of the example service: never under a
newer release, never twice, a plan first, and a clean exit 0 when it is done; locally
and over SSH."""

from __future__ import annotations

import pytest

from tests.e2e.service_targets import RUNBOOKS, release

pytestmark = pytest.mark.e2e


def _run_id(result) -> str:
    return result.json()["run_id"]


def test_an_old_release_is_not_rolled_back_under_a_newer_one(rb, target, state_dir):
    old = release(rb, target, "1.0.0")
    new = release(rb, target, "1.1.0")
    assert old.code == new.code == 0, new.output
    assert target.schema_version() == 2

    refused = rb("rollback", _run_id(old))
    assert refused.code == 2, refused.output
    assert _run_id(new) in refused.stderr and "newer runs" in refused.stderr
    # nothing was touched: no migration to schema 0, 1.1.0 still serving
    assert target.schema_version() == 2 and target.current() == "1.1.0"
    assert target.get("/health") == (200, {"status": "ok", "version": "1.1.0"})

    plan = rb("rollback", "--plan", _run_id(new))
    assert plan.code == 0, plan.output
    undone = [  # "    step: undo", its continuation lines indented further
        line.split(":")[0].strip()
        for line in plan.stdout.splitlines()
        if line.startswith("    ") and not line.startswith("     ")
    ]
    assert undone[:3] == ["mark_good", "restart", "switch"]  # newest first
    assert "migrate --to 1" in plan.stdout  # rendered from the saved results
    assert target.current() == "1.1.0"

    back = rb("rollback", _run_id(new), "--output", "json")
    assert back.code == 0, back.output  # rolled back, as asked
    assert back.json()["exit_code"] == 0
    assert target.current() == "1.0.0" and target.schema_version() == 1
    assert target.get("/health") == (200, {"status": "ok", "version": "1.0.0"})

    twice = rb("rollback", _run_id(new))
    assert twice.code == 2 and f"already rolled back by run {_run_id(back)}" in (
        twice.stderr
    )
    assert target.current() == "1.0.0" and target.schema_version() == 1


@pytest.mark.ssh
def test_rollback_of_a_release_over_ssh_then_refused_twice(rb, two_hosts, artifacts):
    inventory, targets = two_hosts
    run = rb(
        "run", str(RUNBOOKS / "release.yaml"), "-i", str(inventory),
        "-e", "target=web", "-e", "version=1.1.0", "--output", "json",
        "-e", f"artifacts={artifacts}",
    )  # fmt: skip
    assert run.code == 0, run.output
    back = rb("rollback", _run_id(run))
    assert back.code == 0, back.output
    for deployed in targets:  # a first deploy undone: nothing left running
        assert not (deployed.root / "current").exists()
        assert deployed.schema_version() == 0
    again = rb("rollback", _run_id(run))
    assert again.code == 2 and "already rolled back by run" in again.stderr


@pytest.mark.ssh
def test_observability_and_key_rotation_over_ssh_on_two_hosts(
    rb, two_hosts, artifacts, tmp_path
):
    inventory, targets = two_hosts
    fleet = ["-i", str(inventory), "-e", "target=web"]
    deployed = rb(
        "run", str(RUNBOOKS / "release.yaml"), *fleet, "-e", "version=1.1.0",
        "-e", f"artifacts={artifacts}",
    )  # fmt: skip
    assert deployed.code == 0, deployed.output
    tokens = [t.new_user_token(f"ssh-{i}@example.test") for i, t in enumerate(targets)]

    observed = rb("run", str(RUNBOOKS / "observability.yaml"), *fleet)
    assert observed.code == 0, observed.output
    for host in ("web0", "web1"):
        assert f"{host} db_restored" in observed.stderr
    for deployed_target in targets:
        assert deployed_target.get("/test-db")[0] == 200  # the fault was undone

    rotated = rb(
        "run", str(RUNBOOKS / "rotate_jwt.yaml"), *fleet, "-e", "grace=1s",
        "--output", "json",
    )  # fmt: skip
    assert rotated.code == 0, rotated.output
    new_secret = (tmp_path / "secret-store" / "jwt_secret").read_text()
    for deployed_target, token in zip(targets, tokens, strict=True):
        assert deployed_target.get("/profile", token)[0] == 401  # old key dropped
        fresh = deployed_target.login(
            f"ssh-{targets.index(deployed_target)}@example.test", "pw-12345678"
        )
        assert deployed_target.get("/profile", fresh)[0] == 200
    assert new_secret not in rotated.output
