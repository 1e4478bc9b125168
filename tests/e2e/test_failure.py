"""The bad day: retries, rollback with per-step undo, go/no-go, resume, drills."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.conftest import audit_records, start_run, wait_for_steps

pytestmark = pytest.mark.e2e


def saga(
    tmp_path,
    *,
    fail_step: str = "three",
    broken_undo: str | None = None,
    extra: str = "",
) -> str:
    undo = lambda name: (  # noqa: E731
        f"sh -c 'echo undo-{name} >> {tmp_path}/log; exit 9'"
        if name == broken_undo
        else f"echo undo-{name} >> {tmp_path}/log"
    )
    steps = []
    for name in ("one", "two", "three", "four"):
        command = f"echo do-{name} >> {tmp_path}/log"
        if name == fail_step:
            command += "; exit 5"
        steps.append(f"  - id: {name}\n    run: {command}\n    undo: {undo(name)}\n")
    return (
        "version: 1\nname: saga\n"
        + extra
        + "steps:\n"
        + "".join(steps)
        + f"rollback:\n  - id: notify\n    run: echo rollback-step >> {tmp_path}/log\n"
        + f"finally:\n  - id: tidy\n    run: echo finally >> {tmp_path}/log\n"
    )


def test_failure_rolls_back_completed_steps_newest_first(
    runbook_cli, write_runbook, tmp_path, state_dir
):
    rb = write_runbook(saga(tmp_path))
    result = runbook_cli("run", str(rb))
    assert result.code == 1, result.output
    assert (tmp_path / "log").read_text().split() == [
        "do-one",
        "do-two",
        "do-three",
        "undo-two",
        "undo-one",
        "rollback-step",
        "finally",
    ]
    events = [r["event"] for r in audit_records(state_dir)]
    assert (
        events.index("rollback.started")
        < events.index("undo.started")
        < events.index("rollback.finished")
    )
    assert audit_records(state_dir)[-1]["status"] == "rolled_back"


def test_undo_on_failure_runs_the_failed_steps_own_undo(
    runbook_cli, write_runbook, tmp_path
):
    text = saga(tmp_path).replace(
        "    undo: echo undo-three",
        "    undo_on_failure: true\n    undo: echo undo-three",
    )
    rb = write_runbook(text)
    assert runbook_cli("run", str(rb)).code == 1
    assert (tmp_path / "log").read_text().split()[3:6] == [
        "undo-three",
        "undo-two",
        "undo-one",
    ]


def test_failing_undo_still_runs_the_others_and_exits_3(
    runbook_cli, write_runbook, tmp_path
):
    rb = write_runbook(saga(tmp_path, broken_undo="two"))
    result = runbook_cli("run", str(rb), "--output", "json")
    assert result.code == 3, result.output
    assert (tmp_path / "log").read_text().split()[3:5] == ["undo-two", "undo-one"]
    summary = result.json()
    assert summary["status"] == "rollback_failed"
    assert summary["needs_attention"] == [
        {"host": "local", "step": "two", "what": "undo failed: exit code 9"}
    ]
    assert "ROLLBACK INCOMPLETE: a human must look at:" in result.stderr
    assert "local: step two: undo failed: exit code 9" in result.stderr


def test_no_rollback_and_abort_skip_the_undos(runbook_cli, write_runbook, tmp_path):
    rb = write_runbook(saga(tmp_path))
    skipped = runbook_cli("run", str(rb), "--no-rollback")
    assert skipped.code == 1
    assert "undo-" not in (tmp_path / "log").read_text()
    assert skipped.stderr.count("rollback skipped") == 1  # said once, not twice
    (tmp_path / "log").unlink()
    rb = write_runbook(saga(tmp_path, extra="on_failure: abort\n"))
    assert runbook_cli("run", str(rb)).code == 1
    assert (tmp_path / "log").read_text().split() == [
        "do-one",
        "do-two",
        "do-three",
        "finally",
    ]


def test_continue_records_the_failure_and_goes_on(runbook_cli, write_runbook, tmp_path):
    rb = write_runbook(saga(tmp_path, extra="on_failure: continue\n"))
    result = runbook_cli("run", str(rb), "--output", "json")
    assert result.code == 1
    assert result.json()["status"] == "failed"
    assert "do-four" in (tmp_path / "log").read_text()


def test_verify_failure_rolls_back(runbook_cli, write_runbook, tmp_path):
    rb = write_runbook(
        saga(tmp_path, fail_step="none") + "verify:\n  - id: check\n    run: exit 1\n"
    )
    assert runbook_cli("run", str(rb)).code == 1
    assert (tmp_path / "log").read_text().split()[4:8] == [
        "undo-four",
        "undo-three",
        "undo-two",
        "undo-one",
    ]


def test_failed_preconditions_are_all_reported_exit_4_and_nothing_changes(
    runbook_cli, write_runbook, tmp_path
):
    rb = write_runbook(f"""
        version: 1
        name: gated
        preconditions:
          - id: disk
            name: Enough disk
            run: "true"
          - id: ci_green
            name: CI is green
            run: "exit 1"
          - id: db_up
            name: Database reachable
            run: "exit 2"
        steps:
          - id: change
            run: touch {tmp_path}/changed
    """)
    result = runbook_cli("run", str(rb))
    assert result.code == 4, result.output
    assert not (tmp_path / "changed").exists()
    assert "GO      local      Enough disk" in result.stderr
    assert "NO-GO   local      CI is green" in result.stderr
    assert "NO-GO   local      Database reachable" in result.stderr
    check = runbook_cli("check", str(rb))
    assert check.code == 4 and "=> NO-GO" in check.stderr


def test_retries_with_until_and_backoff(
    runbook_cli, write_runbook, tmp_path, state_dir
):
    counter = tmp_path / "count"
    rb = write_runbook(f"""
        version: 1
        name: retry
        steps:
          - id: flaky
            run: n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; echo $n
            retries: {{attempts: 5, delay: 200ms, backoff: 2, until: "steps.flaky.stdout | int >= 3"}}
          - id: picky
            run: exit 7
            retries: {{attempts: 3, delay: 10ms, retry_on: {{rc: [75]}}}}
    """)
    started = time.monotonic()
    result = runbook_cli("run", str(rb), "--output", "json")
    assert result.code == 1
    retries = [r for r in audit_records(state_dir) if r["event"] == "step.retry"]
    assert [(r["step"], r["attempt"], r["next_delay_ms"]) for r in retries] == [
        ("flaky", 1, 200),
        ("flaky", 2, 400),
    ]
    steps = {s["step"]: s for s in result.json()["steps"]}
    assert steps["flaky"]["attempts"] == 3 and steps["flaky"]["status"] == "changed"
    assert steps["picky"]["attempts"] == 1  # rc 7 is not in retry_on: no retry
    assert time.monotonic() - started >= 0.6
    assert "retried 2" in result.stderr


def test_until_never_true_is_a_failure(runbook_cli, write_runbook):
    rb = write_runbook("""
        version: 1
        name: never
        steps:
          - id: wait
            run: echo no
            retries: {attempts: 2, delay: 10ms, until: "steps.wait.stdout == 'yes'"}
    """)
    result = runbook_cli("run", str(rb))
    assert result.code == 1
    assert (
        "until `steps.wait.stdout == 'yes'` still false after 2 attempts"
        in result.stderr
    )


def test_resume_after_failure_skips_completed_steps(
    runbook_cli, write_runbook, tmp_path, state_dir
):
    gate = tmp_path / "fixed"
    rb = write_runbook(f"""
        version: 1
        name: resumable
        on_failure: abort
        steps:
          - id: one
            run: echo one >> {tmp_path}/count; echo value-one
          - id: two
            run: test -e {gate} && echo two >> {tmp_path}/count
          - id: three
            run: echo "three saw {{{{ steps.one.stdout | trim }}}}" >> {tmp_path}/count
    """)
    first = runbook_cli("run", str(rb), "--output", "json")
    assert first.code == 1
    run_id = first.json()["run_id"]
    gate.touch()
    resumed = runbook_cli("resume", run_id, "--output", "json")
    assert resumed.code == 0, resumed.output
    assert (tmp_path / "count").read_text().split("\n")[:3] == [
        "one",
        "two",
        "three saw value-one",
    ]
    started = [r for r in audit_records(state_dir) if r["event"] == "run.started"]
    assert started[-1]["resumed_from"] == run_id
    again = runbook_cli("resume", resumed.json()["run_id"])
    assert again.code == 2 and "succeeded" in again.stderr


def test_resume_refuses_a_changed_runbook_unless_forced_and_audits_the_force(
    runbook_cli, write_runbook, tmp_path, state_dir
):
    rb = write_runbook(saga(tmp_path, extra="on_failure: abort\n"))
    first = runbook_cli("run", str(rb), "--output", "json")
    run_id = first.json()["run_id"]
    rb.write_text(rb.read_text().replace("exit 5", "true"))
    refused = runbook_cli("resume", run_id)
    assert refused.code == 2
    assert f"runbook {rb} changed since run {run_id}" in refused.stderr
    assert "use --force to resume anyway" in refused.stderr
    forced = runbook_cli("resume", run_id, "--force")
    assert forced.code == 0, forced.output
    changed = [
        r for r in audit_records(state_dir)
        if r["event"] == "notice" and r["kind"] == "runbook.changed"
    ]  # fmt: skip
    assert len(changed) == 1 and run_id in changed[0]["message"]
    assert changed[0]["run_id"] != run_id  # recorded by the resuming run


def test_resume_refuses_a_rolled_back_run(runbook_cli, write_runbook, tmp_path):
    rb = write_runbook(saga(tmp_path))
    first = runbook_cli("run", str(rb), "--output", "json")
    assert first.json()["status"] == "rolled_back"
    refused = runbook_cli("resume", first.json()["run_id"])
    assert refused.code == 2 and "rolled back" in refused.stderr


def test_resume_after_sigint_skips_completed_steps(
    cli_env, runbook_cli, write_runbook, tmp_path, state_dir
):
    rb = write_runbook(f"""
        version: 1
        name: interrupted
        steps:
          - id: one
            run: echo one >> {tmp_path}/count
          - id: slow
            run: test -e {tmp_path}/fast || sleep 30; echo slow >> {tmp_path}/count
          - id: three
            run: echo three >> {tmp_path}/count
    """)
    proc = start_run(cli_env, tmp_path, "run", str(rb))
    wait_for_steps(state_dir, 2)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert "result: interrupted" in err and "local=failed" in err  # never "ok"
    run_id = audit_records(state_dir)[0]["run_id"]
    (tmp_path / "fast").touch()
    resumed = runbook_cli("resume", run_id)
    assert resumed.code == 0, resumed.output
    assert (tmp_path / "count").read_text().split() == ["one", "slow", "three"]


def test_sigterm_exits_143_and_rollback_run_id_undoes_what_it_completed(
    cli_env, runbook_cli, write_runbook, tmp_path, state_dir
):
    rb = write_runbook(f"""
        version: 1
        name: terminated
        steps:
          - id: one
            run: echo do-one >> {tmp_path}/log
            undo: echo undo-one >> {tmp_path}/log
          - id: slow
            run: sleep 30
    """)
    proc = start_run(cli_env, tmp_path, "run", str(rb))
    wait_for_steps(state_dir, 2)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    assert proc.returncode == 143
    run_id = audit_records(state_dir)[0]["run_id"]
    rolled = runbook_cli("rollback", run_id)
    assert rolled.code == 0, rolled.output  # rolled back, as asked
    assert (tmp_path / "log").read_text().split() == ["do-one", "undo-one"]


def test_drill_passes_when_the_system_comes_back(
    runbook_cli, write_runbook, tmp_path, state_dir
):
    rb = write_runbook(f"""
        version: 1
        name: drilled
        preconditions:
          - id: clean
            name: No marker yet
            run: test ! -e {tmp_path}/marker
        steps:
          - id: make
            run: touch {tmp_path}/marker
            undo: rm -f {tmp_path}/marker
          - id: more
            run: echo more
    """)
    report = tmp_path / "drill.json"
    result = runbook_cli(
        "drill",
        str(rb),
        "--fail-at",
        "make",
        "--report",
        str(report),
        "--report",
        f"json:{tmp_path}/run.json",
    )
    assert result.code == 0, result.output
    assert "drill report: PASS" in result.stderr
    assert "recovery time" in result.stderr
    drill = next(r for r in audit_records(state_dir) if r["event"] == "drill.report")
    assert drill["passed"] is True and drill["steps_done"] == ["make"]
    assert drill["undos"][0]["step"] == "make"
    assert not (tmp_path / "marker").exists()
    written = json.loads(report.read_text())
    assert written["passed"] is True and written["recovery_ms"] >= 0
    assert json.loads((tmp_path / "run.json").read_text())["schema_version"] == 1


def test_a_drill_passes_whatever_tmpdir_its_checks_make_temp_files_in(
    runbook_cli, write_runbook, tmp_path
):
    """A check that builds in ``mktemp -d`` prints a new path each time: blanked,
    whether TMPDIR is /tmp or not (macOS, systemd's PrivateTmp, CI runners)."""
    scratch = tmp_path / "scratch-tmp"
    scratch.mkdir()
    rb = write_runbook(f"""
        version: 1
        name: drilled
        preconditions:
          - id: builds
            run: d=$(mktemp -d) && echo "built $d/dist" && rmdir "$d"
        steps:
          - id: make
            run: touch {tmp_path}/marker
            undo: rm -f {tmp_path}/marker
    """)
    for tmpdir in (str(scratch), "/tmp"):
        result = runbook_cli("drill", str(rb), env={"TMPDIR": tmpdir})
        assert result.code == 0, result.output
        assert "drill report: PASS" in result.stderr


def test_drill_with_a_broken_undo_fails_naming_what_differs(
    runbook_cli, write_runbook, tmp_path
):
    rb = write_runbook(f"""
        version: 1
        name: drilled
        preconditions:
          - id: clean
            name: No marker yet
            run: test ! -e {tmp_path}/marker
        steps:
          - id: make
            run: touch {tmp_path}/marker
            undo: echo forgot to remove it
    """)
    result = runbook_cli("drill", str(rb))
    assert result.code == 1, result.output
    assert "drill report: FAIL" in result.stderr
    assert "DIFFERS: local clean: ok before, failed after" in result.stderr
    (tmp_path / "marker").unlink()


def test_start_at_begins_a_fresh_run_at_a_step(runbook_cli, write_runbook, tmp_path):
    rb = write_runbook(saga(tmp_path, fail_step="none"))
    result = runbook_cli("run", str(rb), "--start-at", "three")
    assert result.code == 0, result.output
    assert (tmp_path / "log").read_text().split() == ["do-three", "do-four", "finally"]
    bad = runbook_cli("run", str(rb), "--start-at", "nope")
    assert bad.code == 2 and "no step 'nope'" in bad.stderr
    assert "(steps: one, two, three, four)" in bad.stderr
    late = runbook_cli("run", str(rb), "--start-at", "tidy")
    assert late.code == 2 and "step 'tidy' is in finally:, not in steps:" in late.stderr
    typo = runbook_cli("run", str(rb), "--start-at", "thre")
    assert typo.code == 2 and "did you mean 'three'?" in typo.stderr


def test_second_ctrl_c_skips_finally_but_still_records_the_interruption(
    cli_env, write_runbook, tmp_path, state_dir
):
    rb = write_runbook(f"""
        version: 1
        name: twice
        steps:
          - id: long
            run: sleep 30
        finally:
          - id: slow_cleanup
            run: sleep 30; touch {tmp_path}/cleaned
    """)
    proc = start_run(cli_env, tmp_path, "run", str(rb))

    wait_for_steps(state_dir, 1)
    proc.send_signal(signal.SIGINT)
    wait_for_steps(state_dir, 2)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert not (tmp_path / "cleaned").exists()
    finished = audit_records(state_dir)[-1]
    assert finished["event"] == "run.finished" and finished["status"] == "interrupted"
    assert "finally steps skipped" in finished["message"]


def test_a_failed_check_shows_its_last_words_in_the_go_no_go_table(
    runbook_cli, write_runbook
):
    rb = write_runbook("""
        version: 1
        name: words
        preconditions:
          - id: secret_fit
            name: JWT secret fit for production
            run: echo "JWT_SECRET is 12 characters, need 32" >&2; exit 1
        steps:
          - id: s
            run: "true"
    """)
    result = runbook_cli("check", str(rb))
    assert result.code == 4
    assert "exit code 1: JWT_SECRET is 12 characters, need 32" in result.stderr


def test_a_run_is_resumed_once(runbook_cli, write_runbook, tmp_path):
    rb = write_runbook(saga(tmp_path, extra="on_failure: abort\n"))
    first = runbook_cli("run", str(rb), "--output", "json")
    run_id = first.json()["run_id"]
    assert f"run {run_id}: continue with `runbook resume {run_id}`" in first.stderr
    again = runbook_cli("resume", run_id, "--output", "json")
    assert again.code == 1  # step three still fails
    twice = runbook_cli("resume", run_id)
    assert twice.code == 2
    assert f"already resumed as run {again.json()['run_id']}" in twice.stderr


def test_sighup_stops_as_carefully_as_sigterm(
    cli_env, write_runbook, tmp_path, state_dir
):
    rb = write_runbook(f"""
        version: 1
        name: hangup
        steps:
          - id: long
            run: sleep 30
        finally:
          - id: tidy
            run: touch {tmp_path}/tidied
    """)
    proc = start_run(cli_env, tmp_path, "run", str(rb))
    wait_for_steps(state_dir, 1)
    proc.send_signal(signal.SIGHUP)
    proc.communicate(timeout=20)
    assert proc.returncode == 129
    assert (tmp_path / "tidied").exists()
    assert audit_records(state_dir)[-1]["status"] == "interrupted"


def test_a_closed_terminal_does_not_stop_the_run(
    cli_env, write_runbook, tmp_path, state_dir
):
    rb = write_runbook(f"""
        version: 1
        name: chatty
        steps:
          - id: chat
            run: for i in $(seq 3000); do echo line $i; done
          - id: after
            run: touch {tmp_path}/after
    """)
    proc = start_run(cli_env, tmp_path, "run", str(rb))
    assert proc.stderr is not None
    proc.stderr.readline()  # like `| head -1`: read a line, then go away
    proc.stderr.close()
    proc.communicate(timeout=30)
    assert (tmp_path / "after").exists()
    assert audit_records(state_dir)[-1]["status"] == "succeeded"


def test_a_report_that_cannot_be_written_is_refused_first_or_exit_3_after(
    runbook_cli, write_runbook, tmp_path, state_dir
):
    rb = write_runbook("version: 1\nname: r\nsteps:\n  - id: a\n    run: touch ran\n")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for report, why in (
        (f"json:{tmp_path}", "is a directory; give a file name"),
        (f"html:{rb}/x.html", "is not a directory"),
        (f"json:{fifo}", "is not a regular file"),  # writing it would block
        (f"json:{state_dir}/audit.jsonl", "is in the state dir"),
        (f"json:{rb}", "is the runbook"),
        (f"json:{tmp_path}/{'a' * 300}.json", "File name too long"),
    ):
        refused = runbook_cli("run", str(rb), "--report", report)
        assert refused.code == 2 and why in refused.stderr, refused.output
        assert "internal error" not in refused.output
    twice = runbook_cli(
        "run", str(rb), "--report", f"json:{tmp_path}/r.json",
        "--report", f"markdown:{tmp_path}/./r.json",
    )  # fmt: skip
    assert twice.code == 2 and "another --report names" in twice.stderr
    assert not (tmp_path / "ran").exists()
    # the directory becomes a file while the run runs: its result stands, exit 3
    gone = tmp_path / "gone"
    gone.mkdir()
    rb.write_text(
        f"version: 1\nname: r\nsteps:\n  - id: a\n    run: rmdir {gone} && touch {gone} ran\n"
    )
    after = runbook_cli(
        "run", str(rb), "--report", f"json:{gone}/sub/r.json",
        "--report", f"markdown:{tmp_path}/r.md", "--output", "json",
    )  # fmt: skip
    assert after.code == 3, after.output
    assert "result: succeeded" in after.stderr and "internal error" not in after.output
    assert f"cannot write json report {gone}/sub/r.json" in after.stderr
    assert (tmp_path / "r.md").exists()  # the other report is written
    assert after.json()["exit_code"] == 3
    run_id = after.json()["run_id"]
    again = runbook_cli("audit", "show", run_id, "--report", f"json:{tmp_path}/r.json")
    assert again.code == 0 and (tmp_path / "r.json").exists()
