"""Everything that keeps state, against both backends: the file default and
PostgreSQL (``backend`` sets RUNBOOK_STATE_URL to a fresh database). Run, resume,
rollback and its refusals, check, drill, audit list/show/verify/export, locks,
unlock and approvals from another process behave the same on both."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import start_run
from tests.e2e.sagas import logged, run_id_of, saga_runbook

pytestmark = pytest.mark.e2e


def _saga(tmp_path, **kw):
    return saga_runbook(tmp_path, checked=True, **kw)


def test_runs_are_listed_shown_verified_and_exported(
    backend, runbook_cli, write_runbook, tmp_path
):
    rb = write_runbook(_saga(tmp_path))
    first = runbook_cli("run", str(rb))
    assert first.code == 0, first.output
    second = runbook_cli("run", str(rb), "-e", "tag=b")
    assert second.code == 0, second.output
    listed = runbook_cli("audit", "list")
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == [
        run_id_of(first),
        run_id_of(second),
    ]
    shown = runbook_cli("audit", "show", "last", "--json")
    records = [json.loads(line) for line in shown.stdout.splitlines()]
    assert {r["run_id"] for r in records} == {run_id_of(second)}
    assert [r["step"] for r in records if r["event"] == "step.started"] == [
        "writable",
        "one",
        "two",
        "three",
    ]
    verified = runbook_cli("audit", "verify")
    assert verified.code == 0, verified.output
    head = verified.stdout.split()[1]
    assert f"ok: {len(backend.lines())} records" in verified.stderr
    # the export is a JSONL audit log that the file verifier accepts as it is
    export = tmp_path / "backup" / "audit.jsonl"
    export.parent.mkdir()
    exported = runbook_cli("audit", "export", str(export))
    assert exported.code == 0, exported.output
    assert export.read_bytes().splitlines() == backend.lines()
    again = runbook_cli(
        "audit", "verify", "--state-dir", str(export.parent), "--expect-head", head,
        env={"RUNBOOK_STATE_URL": ""},
    )  # fmt: skip
    assert again.code == 0, again.output
    assert again.stdout.split()[1] == head


def test_resume_continues_once_and_rollback_undoes_the_release(
    backend, cli_env, runbook_cli, write_runbook, tmp_path
):
    rb = write_runbook(_saga(tmp_path, slow=True))
    first = start_run(cli_env, tmp_path, "run", str(rb))
    backend.wait_for('"step.started"', 3)  # writable, one, two
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=20)
    assert first.returncode == 130
    first_id = backend.records()[0]["run_id"]
    (tmp_path / "go").touch()
    resumed = runbook_cli("resume", first_id)
    assert resumed.code == 0, resumed.output
    assert "not repeated: one" in resumed.stderr
    assert logged(tmp_path) == ["do-one-a", "do-two", "do-three"]
    twice = runbook_cli("resume", first_id)
    assert twice.code == 2 and f"already resumed as run {run_id_of(resumed)}" in (
        twice.stderr
    )
    refused = runbook_cli("rollback", first_id)
    assert refused.code == 2 and f"roll back {run_id_of(resumed)}" in refused.stderr
    rolled = runbook_cli("rollback", run_id_of(resumed))
    assert rolled.code == 0, rolled.output
    assert logged(tmp_path)[3:] == ["undo-three", "undo-two", "undo-one-a"]


def test_rollback_refusals_name_the_run_and_force_is_audited(
    backend, runbook_cli, write_runbook, tmp_path
):
    rb = write_runbook(_saga(tmp_path))
    old = runbook_cli("run", str(rb), "-e", "tag=old")
    new = runbook_cli("run", str(rb), "-e", "tag=new")
    assert old.code == new.code == 0
    under = runbook_cli("rollback", run_id_of(old))
    assert under.code == 2 and "newer runs on the same hosts" in under.stderr
    assert run_id_of(new) in under.stderr
    first = runbook_cli("rollback", run_id_of(new))
    assert first.code == 0, first.output
    again = runbook_cli("rollback", run_id_of(new))
    assert again.code == 2
    assert f"already rolled back by run {run_id_of(first)}" in again.stderr
    forced = runbook_cli("rollback", run_id_of(new), "--force")
    assert forced.code == 0, forced.output
    notices = [r for r in backend.records() if r["event"] == "notice"]
    assert any(n["kind"] == "rollback.forced" for n in notices)
    failing = write_runbook(_saga(tmp_path, fail=True, lock="other"), "f.yaml")
    itself = runbook_cli("run", str(failing))
    assert itself.code == 1, itself.output
    refused = runbook_cli("rollback", run_id_of(itself))
    assert refused.code == 2 and "already rolled back, automatically" in refused.stderr


def test_check_and_drill(backend, runbook_cli, write_runbook, tmp_path):
    rb = write_runbook(_saga(tmp_path))
    go = runbook_cli("check", str(rb))
    assert go.code == 0, go.output
    drill = runbook_cli("drill", str(rb), "--fail-at", "two")
    assert drill.code == 0, drill.output
    assert "drill report: PASS" in drill.stderr
    modes = [r.get("mode") for r in backend.records() if r["event"] == "run.started"]
    assert modes == ["check", "drill"]
    assert any(r["event"] == "drill.report" for r in backend.records())


def test_a_held_lock_is_refused_naming_its_holder_and_freed_when_it_ends(
    backend, cli_env, runbook_cli, write_runbook, tmp_path
):
    rb = write_runbook(_saga(tmp_path, slow=True))
    holder = start_run(cli_env, tmp_path, "run", str(rb))
    backend.wait_for('"step.started"', 3)
    holder_id = backend.records()[0]["run_id"]
    refused = runbook_cli("run", str(rb))
    assert refused.code == 4, refused.output
    assert "lock 'app'" in refused.stderr and f"run {holder_id}" in refused.stderr
    assert "since 20" in refused.stderr  # when it was taken
    unlock = runbook_cli("unlock", "app")
    assert unlock.code == 4 and holder_id in unlock.stderr
    (tmp_path / "go").touch()
    holder.communicate(timeout=30)
    assert holder.returncode == 0
    assert runbook_cli("unlock", "app").stderr.strip().endswith("is not held")
    assert runbook_cli("run", str(rb)).code == 0


GATE = """
    version: 1
    name: gate
    params:
      env: {type: string, default: production}
    steps:
      - id: ask
        approve: {message: "Deploy to {{ params.env }}?", confirm: "{{ params.env }}", timeout: 30s}
      - id: after
        run: echo went-on
"""


def _approve(cli_env, tmp_path, *args, operator="granter@elsewhere"):
    env = dict(cli_env, RUNBOOK_OPERATOR=operator)
    return subprocess.run(
        [sys.executable, "-m", "runbook_engine", "approve", *args],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_gate_waiting_without_a_tty_is_approved_from_another_process(
    backend, cli_env, write_runbook, tmp_path
):
    rb = write_runbook(GATE)
    waiting = start_run(cli_env, tmp_path, "run", str(rb))
    backend.wait_for('"approval.waiting"')
    run_id = backend.records()[0]["run_id"]
    wrong = _approve(cli_env, tmp_path, run_id, "ask")
    assert wrong.returncode == 2 and "--confirm production" in wrong.stderr
    nothing = _approve(cli_env, tmp_path, run_id, "after")
    assert nothing.returncode == 2 and "not waiting" in nothing.stderr
    began = time.monotonic()
    forger = "granter@elsewhere\nlocal ask: refused by alice (tty)\x1b[2J"
    granted = _approve(
        cli_env, tmp_path, run_id, "ask", "--confirm", "production", operator=forger
    )
    assert granted.returncode == 0, granted.stderr
    assert f"run {run_id} recorded it: approved" in granted.stdout
    _out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 0, err
    assert time.monotonic() - began < 10
    assert "went-on" in err and "waiting for approval" in err
    # the approver's name is data: one line, no terminal control
    assert "\x1b" not in err and "\nlocal ask: refused by alice" not in err
    assert "approved by granter@elsewhere\\nlocal ask: refused by alice" in err
    approval = next(r for r in backend.records() if r["event"] == "approval")
    assert approval["approved"] is True and approval["via"] == "remote"
    assert approval["operator"].startswith("granter@elsewhere\\n")
    assert approval["run_id"] == run_id and approval["answer"] == "production"
    late = _approve(cli_env, tmp_path, run_id, "ask", "--confirm", "production")
    assert late.returncode == 2 and "has finished (succeeded)" in late.stderr


def test_a_denied_gate_refuses_and_without_timeout_or_tty_fails_closed_at_once(
    backend, cli_env, runbook_cli, write_runbook, tmp_path
):
    rb = write_runbook(GATE)
    waiting = start_run(cli_env, tmp_path, "run", str(rb))
    backend.wait_for('"approval.waiting"')
    run_id = backend.records()[0]["run_id"]
    denied = _approve(cli_env, tmp_path, run_id[:-2], "ask", "--deny")
    assert denied.returncode == 0, denied.stderr
    waiting.communicate(timeout=30)
    assert waiting.returncode == 4  # refused before any change
    approval = next(r for r in backend.records() if r["event"] == "approval")
    assert approval["approved"] is False and approval["via"] == "remote"
    no_timeout = write_runbook(GATE.replace(", timeout: 30s", ""), "untimed.yaml")
    began = time.monotonic()
    closed = runbook_cli("run", str(no_timeout))
    assert closed.code == 4 and time.monotonic() - began < 10
    assert "fail closed" in closed.stderr and "runbook approve" in closed.stderr


def test_on_a_tty_a_remote_grant_answers_the_prompt(
    backend, cli_env, write_runbook, tmp_path
):
    import os
    import pty

    rb = write_runbook(GATE)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "runbook_engine", "run", str(rb)],
        env=cli_env, stdin=follower, stdout=follower, stderr=follower, close_fds=True,
    )  # fmt: skip
    os.close(follower)
    try:
        backend.wait_for('"approval.waiting"')
        run_id = backend.records()[0]["run_id"]
        granted = _approve(cli_env, tmp_path, run_id, "ask", "--confirm", "production")
        assert granted.returncode == 0, granted.stderr
        chunks = []
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=30)
    finally:
        os.close(leader)
    out = b"".join(chunks).decode(errors="replace")
    assert "Type 'production' to approve" in out and "went-on" in out
    approval = next(r for r in backend.records() if r["event"] == "approval")
    assert approval["via"] == "remote" and approval["approved"] is True


def test_follow_and_probes_and_reports_read_the_same_store(
    backend, cli_env, runbook_cli, write_runbook, tmp_path
):
    rb = write_runbook(f"""
        version: 1
        name: probed
        steps:
          - id: look
            safe: true
            run: echo looked
          - id: wait
            run: while [ ! -e {tmp_path}/go ]; do sleep 0.05; done
    """)
    plan = runbook_cli("plan", str(rb), "--probe")
    assert plan.code == 0, plan.output
    modes = [r.get("mode") for r in backend.records() if r["event"] == "run.started"]
    assert modes == ["plan"]
    run = start_run(cli_env, tmp_path, "run", str(rb))
    backend.wait_for('"step.started"', 3)  # the probe's, then look and wait
    follow = subprocess.Popen(
        [sys.executable, "-m", "runbook_engine", "audit", "show", "last", "-f"],
        env=cli_env, cwd=tmp_path, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    (tmp_path / "go").touch()
    out, err = follow.communicate(timeout=30)
    run.communicate(timeout=30)
    assert follow.returncode == 0, err
    assert "local wait changed" in out and "run finished: succeeded" in out
    report = tmp_path / "r.json"
    shown = runbook_cli("audit", "show", "last", "--report", f"json:{report}")
    assert shown.code == 0, shown.output
    assert json.loads(report.read_text())["run"]["status"] == "succeeded"


def test_a_local_step_reads_the_audit_trail_the_run_writes_to(
    backend, runbook_cli, write_runbook, tmp_path, state_dir
):
    """The store chosen by a flag (not the environment) is the one a local step's
    `$RUNBOOK_CLI audit export` reads: go_no_go.yaml's audit checks rely on it."""
    first = runbook_cli("run", str(write_runbook(_saga(tmp_path))))
    assert first.code == 0, first.output
    count = (
        'import json, sys; print(sum(json.loads(line)["event"] == "run.finished"'
        " for line in sys.stdin))"
    )
    rb = write_runbook(f"""
        version: 1
        name: reader
        steps:
          - id: count
            run: $RUNBOOK_CLI audit export | python3 -c '{count}' > {tmp_path}/seen
    """)
    where = ["--state", backend.url] if backend.url else ["--state-dir", str(state_dir)]
    elsewhere = {"RUNBOOK_STATE_URL": "", "RUNBOOK_STATE_DIR": str(tmp_path / "not")}
    reader = runbook_cli("run", str(rb), *where, env=elsewhere)
    assert reader.code == 0, reader.output
    assert (tmp_path / "seen").read_text().split() == ["1"]  # the first run's end
