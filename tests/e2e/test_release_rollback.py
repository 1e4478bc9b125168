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
