"""The real procedures in runbooks/ against the real example service: releases,
automatic rollback of a broken release, no-go in production, admin bootstrap, the
rollback drill, rollback.yaml and a rolling release over SSH to two sshd hosts."""

from __future__ import annotations

import json

import pytest

from tests.conftest import audit_records
from tests.e2e.fake_github import REPO, TOKEN, Scenario
from tests.e2e.service_targets import (
    ADMIN_PASSWORD,
    RUNBOOKS,
    STRONG_SECRET,
    release,
    snapshot,
    statuses,
)
from tests.support.gfm import Page

pytestmark = pytest.mark.e2e
CI_SHA = "0123456789abcdef0123456789abcdef01234567"


def test_fresh_install_then_two_upgrades(rb, target, state_dir):
    first = release(rb, target, "1.0.0")
    assert first.code == 0, first.output
    assert target.get("/health") == (200, {"status": "ok", "version": "1.0.0"})
    assert target.schema_version() == 1
    status, body = target.get("/test-db")
    assert status == 200 and body["schema_version"] == 1, body
    assert target.current() == "1.0.0" and target.last_good() == "1.0.0"
    secret_file = target.root / "jwt_secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    secret = secret_file.read_text().strip()
    assert len(secret) >= 32
    steps = statuses(first)
    assert steps["jwt_secret"] == "changed" and steps["backup"] == "skipped"
    token = target.new_user_token("first@example.test")
    assert target.get("/wallet", token)[0] == 200

    second = release(rb, target, "1.1.0")
    assert second.code == 0, second.output
    assert target.get("/health") == (200, {"status": "ok", "version": "1.1.0"})
    assert target.schema_version() == 2
    assert target.current() == "1.1.0" and target.last_good() == "1.1.0"
    steps = statuses(second)
    assert steps["jwt_secret"] == "ok" and steps["backup"] == "changed"
    assert len(list((target.root / "backups").glob("app-*.db"))) == 1
    # the user made on 1.0.0 survived the migration and got a 1.1.0 wallet
    token = target.login("first@example.test", "pw-12345678")
    status, wallet = target.get("/wallet", token)
    assert status == 200 and wallet["cash_cents"] == 1_000_000, wallet
    assert target.post("/trade", {"symbol": "ACME", "qty": 2}, token)[0] == 201
    assert (target.root / "releases" / "1.0.0").is_dir()
    # the generated secret never reached the console or the audit log
    everything = first.output + second.output + (state_dir / "audit.jsonl").read_text()
    assert secret not in everything
    assert secret not in (target.root / "log" / "service.log").read_text()


def test_broken_release_rolls_back_and_rollback_yaml_restores_last_good(
    rb, target, state_dir
):
    assert release(rb, target, "1.1.0").code == 0
    broken = release(rb, target, "1.2.0")
    assert broken.code == 1, broken.output
    summary = broken.json()
    assert summary["status"] == "rolled_back"
    steps = statuses(broken)
    assert steps["test_db"] == "failed" and steps["health"] == "ok"
    assert "no such column: fee_rate_bps" in broken.stderr
    assert target.get("/health") == (200, {"status": "ok", "version": "1.1.0"})
    status, body = target.get("/test-db")
    assert status == 200 and body["schema_version"] == 2, body
    assert target.schema_version() == 2
    assert target.current() == "1.1.0" and target.last_good() == "1.1.0"
    assert not (target.root / "releases" / "1.2.0").exists()
    undone = [
        r["step"] for r in audit_records(state_dir) if r["event"] == "undo.finished"
    ]
    assert undone[:4] == ["restart", "switch", "migrate", "unpack"]

    # left broken on purpose (no rollback), then rollback.yaml: the last known good
    left = release(rb, target, "1.2.0", "--no-rollback")
    assert left.code == 1, left.output
    assert target.current() == "1.2.0" and target.schema_version() == 3
    assert target.get("/test-db")[0] == 503
    assert target.last_good() == "1.1.0"
    back = rb("run", str(RUNBOOKS / "rollback.yaml"), *target.place)
    assert back.code == 0, back.output
    assert target.current() == "1.1.0"
    assert target.schema_version() == 2
    assert target.get("/health") == (200, {"status": "ok", "version": "1.1.0"})
    status, body = target.get("/test-db")
    assert status == 200 and body["schema_version"] == 2, body
    # an explicit version that is not on the target is a no-go
    missing = rb(
        "run", str(RUNBOOKS / "rollback.yaml"), "-e", "version=0.9.0", *target.place
    )
    assert missing.code == 4 and "0.9.0 is not unpacked" in missing.stderr


def test_production_with_a_weak_jwt_secret_is_no_go_and_changes_nothing(
    rb, target, tmp_path
):
    assert release(rb, target, "1.0.0").code == 0
    before = snapshot(target.root)
    # too short; long enough but a development value: both refused, neither printed
    for weak in ("Kq9-short-secret", "dev-0123456789abcdefghijklmnopqrstuv"):
        refused = release(
            rb, target, "1.1.0", "-e", "env=production", env={"JWT_SECRET": weak}
        )
        assert refused.code == 4, refused.output
        assert refused.json()["status"] == "no_go"
        assert "NO-GO" in refused.stderr and "JWT secret" in refused.stderr
        assert "JWT secret from $JWT_SECRET is not fit" in refused.stderr
        assert weak not in refused.output
    assert snapshot(target.root) == before
    assert target.current() == "1.0.0" and target.schema_version() == 1
    assert target.get("/health") == (200, {"status": "ok", "version": "1.0.0"})
    # CORS '*' in production is a no-go too; a strong secret and real origins are fit
    cors = rb(
        "check", str(RUNBOOKS / "preflight.yaml"), "-e", "version=1.1.0",
        "-e", "env=production", "-e", f"root={target.root}", "-e", "cors_origins=*",
        "-e", f"artifacts={target.artifacts}", env={"JWT_SECRET": STRONG_SECRET},
    )  # fmt: skip
    assert cors.code == 4 and "CORS" in cors.stderr, cors.output
    fit = rb(
        "check", str(RUNBOOKS / "preflight.yaml"), "-e", "version=1.1.0",
        "-e", "env=production", "-e", f"root={target.root}",
        "-e", "cors_origins=https://app.example.test",
        "-e", f"artifacts={target.artifacts}", env={"JWT_SECRET": STRONG_SECRET},
    )  # fmt: skip
    assert fit.code == 0, fit.output
    assert STRONG_SECRET not in fit.output
    # the integration tests ran on a copy of the real database: it was only read
    assert "Migrations rehearsed" in fit.stderr and "SKIPPED" not in fit.stderr
    assert snapshot(target.root) == before


def test_a_tampered_or_missing_artefact_is_a_no_go_before_anything_changes(
    rb, target, tmp_path
):
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for path in target.artifacts.iterdir():
        (tampered / path.name).write_bytes(path.read_bytes())
    archive = tampered / "example-service-1.1.0.tar.gz"
    archive.write_bytes(archive.read_bytes() + b"\0")
    params = ["-e", f"root={target.root}", "-e", f"port={target.port}"]
    refused = rb(
        "run", str(RUNBOOKS / "release.yaml"), "-e", "version=1.1.0", *params,
        "-e", f"artifacts={tampered}", "--output", "json",
    )  # fmt: skip
    assert refused.code == 4, refused.output
    assert "checksum mismatch for example-service-1.1.0.tar.gz" in refused.stderr
    assert statuses(refused).get("layout") is None
    assert not target.root.exists()
    archive.unlink()
    missing = rb(
        "check", str(RUNBOOKS / "preflight.yaml"), "-e", "version=1.1.0",
        "-e", f"root={target.root}", "-e", f"artifacts={tampered}",
    )  # fmt: skip
    assert missing.code == 4 and "no release artefact" in missing.stderr
    # production deploys what CI built, never a build of the checkout
    built_here = rb(
        "check", str(RUNBOOKS / "preflight.yaml"), "-e", "version=1.1.0",
        "-e", f"root={target.root}", "-e", "env=production",
        env={"JWT_SECRET": STRONG_SECRET},
    )  # fmt: skip
    assert built_here.code == 4, built_here.output
    assert "production deploys the artefact CI built" in built_here.stderr
    assert not target.root.exists()


def test_bootstrap_admin_is_idempotent_and_the_admin_reaches_the_queue(
    rb, target, state_dir
):
    assert release(rb, target, "1.1.0").code == 0
    bootstrap = [str(RUNBOOKS / "bootstrap_admin.yaml"), *target.place]
    env = {"BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD}
    first = rb("run", *bootstrap, "--output", "json", env=env)
    assert first.code == 0, first.output
    assert statuses(first)["admin"] == "changed"
    assert "| admin | created" in first.stderr
    second = rb("run", *bootstrap, "--output", "json", env=env)
    assert second.code == 0, second.output
    assert statuses(second)["admin"] == "ok"
    assert "| admin | unchanged" in second.stderr
    assert second.json()["hosts"] == {"local": "ok"}
    token = target.login("admin@example.test", ADMIN_PASSWORD)
    status, queue = target.get("/admin/queue", token)
    assert status == 200 and "pending" in queue
    user = target.new_user_token("someone@example.test")
    assert target.get("/admin/queue", user)[0] == 403
    # the password is a secret: never in the output or the audit log
    audit = (state_dir / "audit.jsonl").read_text()
    assert ADMIN_PASSWORD not in first.output + second.output + audit
    # without the secret the run refuses before anything runs
    missing = rb("run", *bootstrap)
    assert missing.code == 2 and "BOOTSTRAP_ADMIN_PASSWORD" in missing.stderr


def test_drill_passes_and_go_no_go_reads_it_from_the_audit_log(
    rb, target, state_dir, github
):
    """go/no-go asks (a local stand-in for) GitHub about the exact commit, runs
    preflight and the observability checks, and reads the drill and the admin
    bootstrap from the audit log."""
    assert release(rb, target, "1.1.0").code == 0
    runs = [
        ("lint", "completed", "success", None),
        ("test", "completed", "success", None),
    ]
    github.scenarios[CI_SHA] = Scenario(
        statuses=[("ci/jenkins", "success")], check_runs=runs
    )
    review = [
        str(RUNBOOKS / "go_no_go.yaml"), "-e", "version=1.1.0", "-e", f"commit={CI_SHA}",
        "-e", f"ci_github={REPO}", "-e", f"ci_github_api={github.url}",
        "-e", "db_checks=3", "-e", "db_check_interval=0.1", *target.params,
    ]  # fmt: skip
    token = {"GITHUB_TOKEN": TOKEN}
    early = rb("check", *review, env=token)
    assert early.code == 4, early.output
    assert "no successful bootstrap_admin run" in early.stderr
    assert "no passed rollback drill" in early.stderr
    drill = rb(
        "drill", str(RUNBOOKS / "release.yaml"), "-e", "version=1.2.0", *target.params
    )
    assert drill.code == 0, drill.output
    assert "drill report: PASS" in drill.stderr
    assert "recovery time (failure to end of rollback):" in drill.stderr
    assert "step 'test_db' failed" in drill.stderr  # the real failure came first
    report = next(r for r in audit_records(state_dir) if r["event"] == "drill.report")
    assert report["passed"] is True and report["recovery_ms"] > 0
    assert target.get("/health") == (200, {"status": "ok", "version": "1.1.0"})
    assert target.schema_version() == 2
    env = {"BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD}
    assert (
        rb("run", str(RUNBOOKS / "bootstrap_admin.yaml"), *target.place, env=env).code
        == 0
    )
    go = rb("check", *review, env=token)
    assert go.code == 0, go.output
    assert "CI green for 0123456789ab: 3 required check(s) success" in go.stderr
    assert "3/3 consecutive checks" in go.stderr and "=> GO" in go.stderr
    for row in ("A request id comes back and is logged", "would fire the alert"):
        assert row in go.stderr
    assert "/test-db 503 database_unavailable" in go.stderr  # the fault, undone
    assert target.get("/test-db")[0] == 200
    runs[1] = ("test", "completed", "failure", None)
    red = rb("check", *review, env=token)
    assert red.code == 4, red.output
    assert "CI not green for 0123456789ab: failed: test (failure)" in red.stderr
    github.scenarios[CI_SHA] = Scenario(rate_limited=True)
    limited = rb("check", *review, env=token)
    assert limited.code == 4
    row = next(
        line
        for line in limited.stderr.splitlines()
        if "NO-GO" in line and "CI green" in line
    )
    assert "rate-limited" in row and "resets at" in row
    everything = early.output + go.output + red.output + limited.output
    assert TOKEN not in everything + (state_dir / "audit.jsonl").read_text()


# -- over SSH -------------------------------------------------------------------------


@pytest.mark.ssh
def test_rolling_release_over_ssh_one_host_at_a_time(
    rb, two_hosts, state_dir, artifacts
):
    inventory, targets = two_hosts
    result = rb(
        "run", str(RUNBOOKS / "release.yaml"), "-i", str(inventory),
        "-e", "target=web", "-e", "version=1.1.0", "--output", "json",
        "-e", f"artifacts={artifacts}",
    )  # fmt: skip
    assert result.code == 0, result.output
    assert result.json()["hosts"] == {"web0": "changed", "web1": "changed"}
    for deployed in targets:
        assert deployed.get("/health") == (200, {"status": "ok", "version": "1.1.0"})
        assert deployed.schema_version() == 2
        assert deployed.current() == "1.1.0" and deployed.last_good() == "1.1.0"
    records = audit_records(state_dir)
    batches = [r["hosts"] for r in records if r["event"] == "batch.started"]
    assert batches == [["web0"], ["web1"]]
    # serial: 1: web0 was released and verified before web1 changed anything
    finished = [
        (r["host"], r["step"]) for r in records if r["event"] == "step.finished"
    ]
    assert finished.index(("web0", "mark_good")) < finished.index(("web1", "layout"))


def test_reports_of_a_real_release_and_of_a_rolled_back_one(rb, target, tmp_path):
    import xml.etree.ElementTree as ET

    def reports(name: str) -> list[str]:
        return [
            f"{kind}:{tmp_path / name}.{ext}"
            for kind, ext in (
                ("json", "json"),
                ("junit", "xml"),
                ("markdown", "md"),
                ("html", "html"),
            )
        ]

    good = release(
        rb, target, "1.1.0", *[a for r in reports("good") for a in ("--report", r)]
    )
    assert good.code == 0, good.output
    bad = release(
        rb, target, "1.2.0", *[a for r in reports("bad") for a in ("--report", r)]
    )
    assert bad.code == 1, bad.output

    ok = json.loads((tmp_path / "good.json").read_text())
    assert (
        ok["run"]["status"] == "succeeded" and ok["run"]["params"]["version"] == "1.1.0"
    )
    local = ok["hosts"][0]
    assert local["name"] == "local"
    by_step = {s["step"]: s for s in local["steps"] if s["kind"] == "step"}
    assert (
        by_step["smoke"]["status"] == "ok"
        and "smoke passed" in by_step["smoke"]["stdout_tail"]
    )
    assert all(row["status"] in ("ok", "skipped") for row in ok["go_no_go"]["checks"])
    assert len(ok["chain_head"]) == 64

    rolled = json.loads((tmp_path / "bad.json").read_text())
    assert rolled["run"]["status"] == "rolled_back"
    steps = {s["step"]: s for s in rolled["hosts"][0]["steps"] if s["kind"] == "step"}
    assert steps["test_db"]["status"] == "failed"
    undos = [s["step"] for s in rolled["hosts"][0]["steps"] if s["kind"] == "undo"]
    assert undos[:4] == ["restart", "switch", "migrate", "unpack"]

    suite = ET.parse(tmp_path / "bad.xml").getroot()
    failures = [
        case for case in suite.iter("testcase") if case.find("failure") is not None
    ]
    assert [case.get("name") for case in failures] == ["steps/test_db"]
    assert "fee_rate_bps" in (failures[0].find("failure").text or "")

    markdown = Page((tmp_path / "bad.md").read_text()).text
    assert "rolled_back" in markdown and "test_db" in markdown and "restart" in markdown

    html = (tmp_path / "bad.html").read_text()
    assert 'class="rollback-band"' in html and "undo restart" in html
    assert "test_db" in html and rolled["chain_head"] in html
    assert "<script src" not in html and "<link" not in html  # self-contained
