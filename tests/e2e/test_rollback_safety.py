"""`runbook rollback RUN_ID`, `resume` and drills on the worst day: they never do
harm, and a drill passes only when the state really came back."""

from __future__ import annotations

import signal

import pytest

from tests.conftest import audit_records, start_run, wait_for_steps
from tests.e2e.sagas import logged, run_id_of, saga_runbook

pytestmark = pytest.mark.e2e


def _saga(tmp_path, **kw):
    return saga_runbook(tmp_path, checked=False, **kw)


def test_a_second_rollback_is_refused_naming_the_first_and_force_is_audited(
    runbook_cli, write_runbook, tmp_path, state_dir
):
    rb = write_runbook(_saga(tmp_path))
    run = runbook_cli("run", str(rb))
    assert run.code == 0, run.output
    first = runbook_cli("rollback", run_id_of(run))
    assert first.code == 0, first.output
    assert logged(tmp_path)[3:] == ["undo-three", "undo-two", "undo-one-a"]
    again = runbook_cli("rollback", run_id_of(run))
    assert again.code == 2, again.output
    assert f"already rolled back by run {run_id_of(first)}" in again.stderr
    assert len(logged(tmp_path)) == 6  # nothing ran
    forced = runbook_cli("rollback", run_id_of(run), "--force")
    assert forced.code == 0, forced.output
    assert logged(tmp_path)[6:] == ["undo-three", "undo-two", "undo-one-a"]
    notices = [r for r in audit_records(state_dir) if r["event"] == "notice"]
    assert any(
        n["kind"] == "rollback.forced" and run_id_of(first) in n["message"]
        for n in notices
    )


def test_a_run_that_rolled_itself_back_is_not_rolled_back_again(
    runbook_cli, write_runbook, tmp_path
):
    rb = write_runbook(_saga(tmp_path, fail=True))
    run = runbook_cli("run", str(rb))
    assert run.code == 1 and "rolled_back" in run.stderr, run.output
    again = runbook_cli("rollback", run_id_of(run))
    assert again.code == 2
    assert "already rolled back, automatically" in again.stderr
    assert logged(tmp_path) == ["do-one-a", "do-two", "undo-two", "undo-one-a"]


def test_rolling_back_under_newer_runs_is_refused_until_they_are_undone(
    runbook_cli, write_runbook, tmp_path
):
    rb = write_runbook(_saga(tmp_path))
    old = runbook_cli("run", str(rb), "-e", "tag=old")
    new = runbook_cli("run", str(rb), "-e", "tag=new")
    check = runbook_cli("check", str(rb))  # read-only: never in the way
    nothing = runbook_cli("rollback", run_id_of(check))
    assert nothing.code == 2 and "a check changes nothing" in nothing.stderr
    assert old.code == new.code == 0
    refused = runbook_cli("rollback", run_id_of(old))
    assert refused.code == 2, refused.output
    assert "newer runs on the same hosts" in refused.stderr
    assert run_id_of(new) in refused.stderr and "--force" in refused.stderr
    assert len(logged(tmp_path)) == 6  # nothing ran
    assert runbook_cli("rollback", run_id_of(new)).code == 0
    assert runbook_cli("rollback", run_id_of(old)).code == 0
    assert logged(tmp_path)[6:] == [
        *["undo-three", "undo-two", "undo-one-new"],
        *["undo-three", "undo-two", "undo-one-old"],
    ]


def test_runs_under_another_lock_are_not_in_the_way(
    runbook_cli, write_runbook, tmp_path
):
    rb = write_runbook(_saga(tmp_path))
    other = write_runbook(_saga(tmp_path, name="other", lock="db"), "other.yaml")
    old = runbook_cli("run", str(rb))
    assert runbook_cli("run", str(other)).code == 0
    assert runbook_cli("rollback", run_id_of(old)).code == 0


def test_rollback_plan_prints_the_undos_newest_first_and_changes_nothing(
    runbook_cli, write_runbook, tmp_path, state_dir
):
    rb = write_runbook(_saga(tmp_path))
    run = runbook_cli("run", str(rb), "-e", "tag=x")
    records = len(audit_records(state_dir))
    plan = runbook_cli("rollback", "--plan", run_id_of(run))
    assert plan.code == 0, plan.output
    lines = [line.strip() for line in plan.stdout.splitlines()]
    assert lines[1] == "local:"
    assert [line.split(":")[0] for line in lines[2:]] == ["three", "two", "one"]
    assert f"one: echo undo-one-x >> {tmp_path}/log" in lines  # rendered
    assert len(logged(tmp_path)) == 3 and len(audit_records(state_dir)) == records
    assert runbook_cli("rollback", "--dry-run", run_id_of(run)).stdout == plan.stdout
    # as audit show does: last, or a unique prefix of the id
    assert runbook_cli("rollback", "--plan", "last").stdout == plan.stdout
    assert runbook_cli("rollback", "--plan", run_id_of(run)[:-2]).stdout == plan.stdout
    unknown = runbook_cli("rollback", "--plan", "nosuch")
    assert unknown.code == 2 and "no run 'nosuch' in the audit log" in unknown.stderr


def test_a_resumed_release_rolls_back_as_one_saga_from_any_directory(
    cli_env, runbook_cli, write_runbook, tmp_path, state_dir
):
    rb = write_runbook(_saga(tmp_path, slow=True))
    first = start_run(cli_env, tmp_path, "run", rb.name)  # relative to its cwd
    wait_for_steps(state_dir, 2)
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=20)
    assert first.returncode == 130
    first_id = audit_records(state_dir)[0]["run_id"]
    (tmp_path / "go").touch()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = runbook_cli("resume", first_id, cwd=elsewhere)
    assert resumed.code == 0, resumed.output
    assert f"local: done by run {first_id} and earlier, not repeated: one" in (
        resumed.stderr
    )
    assert logged(tmp_path) == ["do-one-a", "do-two", "do-three"]
    refused = runbook_cli("rollback", first_id, cwd=elsewhere)
    assert refused.code == 2 and f"roll back {run_id_of(resumed)}" in refused.stderr
    rolled = runbook_cli("rollback", run_id_of(resumed), cwd=elsewhere)
    assert rolled.code == 0, rolled.output
    # one saga: the resumed run's steps, then the original run's, newest first
    assert logged(tmp_path)[3:] == ["undo-three", "undo-two", "undo-one-a"]
    assert runbook_cli("rollback", run_id_of(resumed)).code == 2
    listed = runbook_cli("audit", "list").stdout
    modes = [line.split()[1] for line in listed.splitlines()[1:]]
    assert modes == ["run", "resume", "rollback"]
    recent = runbook_cli("audit", "list", "-n", "2")
    assert [line.split()[1] for line in recent.stdout.splitlines()[1:]] == [
        "resume",
        "rollback",
    ]
    assert "the last 2 of 3 runs (-n N shows more)" in recent.stderr


def _waiting_runbook(
    tmp_path, *, fail: bool = False, slow_step: bool = False, undo_on_failure=False
) -> str:
    """Step two's undo (or with ``slow_step`` step two itself) waits for
    ``tmp_path/go``: a rollback (or a step) to interrupt; ``fail``: step three
    fails."""
    log, go = tmp_path / "log", tmp_path / "go"
    wait = f"while [ ! -e {go} ]; do sleep 0.1; done"
    two = (
        f"echo do-two-begun >> {log}; {wait}" if slow_step else f"echo do-two >> {log}"
    )
    two_undo = (
        f"echo undo-two >> {log}"
        if slow_step
        else f"echo undo-two-begun >> {log}; {wait}; echo undo-two >> {log}"
    )
    return f"""
        version: 1
        name: release
        steps:
          - id: one
            run: echo do-one >> {log}
            undo: echo undo-one >> {log}
          - id: two
            run: {two}
            undo: {two_undo}
            undo_on_failure: {str(undo_on_failure).lower()}
          - id: three
            run: {"exit 3" if fail else f"echo do-three >> {log}"}
            undo: echo undo-three >> {log}
    """


def _until_logged(tmp_path, word: str) -> None:
    import time

    deadline = time.monotonic() + 20
    while word not in logged(tmp_path):
        assert time.monotonic() < deadline, f"{word} never came"
        time.sleep(0.05)
    time.sleep(0.2)  # and the command is still running


def _interrupt_when_undo_two_begins(process, tmp_path) -> str:
    _until_logged(tmp_path, "undo-two-begun")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    return stderr


def test_a_run_stopped_during_its_rollback_is_finished_by_rollback_never_resumed(
    cli_env, runbook_cli, write_runbook, tmp_path, state_dir
):
    rb = write_runbook(_waiting_runbook(tmp_path, fail=True))
    process = start_run(cli_env, tmp_path, "run", str(rb))
    stderr = _interrupt_when_undo_two_begins(process, tmp_path)
    run_id = audit_records(state_dir)[0]["run_id"]
    assert f"finish the rollback with `runbook rollback {run_id}`" in stderr
    assert "runbook resume" not in stderr
    resumed = runbook_cli("resume", run_id)
    assert resumed.code == 2, resumed.output
    assert "its rollback had begun when it stopped" in resumed.stderr
    assert logged(tmp_path) == ["do-one", "do-two", "undo-two-begun"]  # nothing ran
    (tmp_path / "go").touch()
    finished = runbook_cli("rollback", run_id)
    assert finished.code == 0, finished.output
    assert logged(tmp_path)[3:] == ["undo-two-begun", "undo-two", "undo-one"]


def test_an_interrupted_rollback_is_continued_by_rolling_back_the_run_again(
    cli_env, runbook_cli, write_runbook, tmp_path
):
    rb = write_runbook(_waiting_runbook(tmp_path))
    run = runbook_cli("run", str(rb))
    assert run.code == 0, run.output
    process = start_run(cli_env, tmp_path, "rollback", run_id_of(run))
    stderr = _interrupt_when_undo_two_begins(process, tmp_path)
    rollback_id = stderr.split(", run ", 1)[1].split(")", 1)[0]
    assert f"finish the rollback with `runbook rollback {run_id_of(run)}`" in stderr
    resumed = runbook_cli("resume", rollback_id)
    assert resumed.code == 2, resumed.output
    assert f"it is a rollback of run {run_id_of(run)}" in resumed.stderr
    # `rollback last` names the interrupted rollback: refused, pointing at the run
    undo_the_undo = runbook_cli("rollback", "last", "--force")
    assert undo_the_undo.code == 2, undo_the_undo.output
    assert f"`runbook rollback {run_id_of(run)}`" in undo_the_undo.stderr
    assert logged(tmp_path)[3:] == ["undo-three", "undo-two-begun"]  # nothing more
    (tmp_path / "go").touch()
    again = runbook_cli("rollback", run_id_of(run))
    assert again.code == 0, again.output
    # undo three was done: not again; undo two had not finished: done now
    assert logged(tmp_path)[5:] == ["undo-two-begun", "undo-two", "undo-one"]


def test_a_step_cut_short_is_undone_later_only_with_undo_on_failure(
    cli_env, runbook_cli, write_runbook, tmp_path, state_dir
):
    for undo_on_failure in (True, False):
        (tmp_path / "log").unlink(missing_ok=True)
        rb = write_runbook(
            _waiting_runbook(tmp_path, slow_step=True, undo_on_failure=undo_on_failure)
        )
        process = start_run(cli_env, tmp_path, "run", str(rb))
        _until_logged(tmp_path, "do-two-begun")
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
        assert process.returncode == 130
        run_id = audit_records(state_dir)[-1]["run_id"]
        plan = runbook_cli("rollback", "--plan", run_id)
        rolled = runbook_cli("rollback", run_id)
        assert rolled.code == 0, rolled.output
        if undo_on_failure:  # it may have done part of it: undone too
            assert "two:" in plan.stdout
            assert logged(tmp_path) == [
                "do-one",
                "do-two-begun",
                "undo-two",
                "undo-one",
            ]
        else:
            assert "two:" not in plan.stdout
            assert logged(tmp_path) == ["do-one", "do-two-begun", "undo-one"]


def test_a_drill_whose_undo_changes_nothing_it_checks_fails_with_a_diff(
    runbook_cli, write_runbook, tmp_path
):
    version = tmp_path / "version"
    version.write_text("1.0\n")
    rb = write_runbook(f"""
        version: 1
        name: upgrade
        preconditions:
          - id: current
            name: Version in place
            run: cat {version}
        steps:
          - id: upgrade
            run: echo 2.0 > {version}
            undo: echo "pretending to restore"
    """)
    result = runbook_cli("drill", str(rb))
    assert result.code == 1, result.output
    assert "drill report: FAIL" in result.stderr
    assert "local current: says something else after the rollback" in result.stderr
    assert "-1.0" in result.stderr and "+2.0" in result.stderr


def test_a_drill_that_proves_nothing_fails_unless_allowed(
    runbook_cli, write_runbook, tmp_path, state_dir
):
    rb = write_runbook("""
        version: 1
        name: trivial
        steps:
          - id: greet
            run: echo hello
    """)
    result = runbook_cli("drill", str(rb))
    assert result.code == 1, result.output
    assert "proves nothing" in result.stderr and "--allow-trivial" in result.stderr
    assert "drill report: FAIL" in result.stderr  # never PASS then FAIL
    verdicts = [
        r["passed"] for r in audit_records(state_dir) if r["event"] == "drill.report"
    ]
    assert verdicts == [False]  # what go_no_go reads agrees with the exit code
    allowed = runbook_cli("drill", str(rb), "--allow-trivial")
    assert allowed.code == 0, allowed.output
    assert "warning: this drill proves nothing" in allowed.stderr


def test_a_resumed_run_sees_the_runbook_vars_and_what_set_steps_gave(
    runbook_cli, write_runbook, tmp_path
):
    rb = write_runbook(f"""
        version: 1
        name: vars_kept
        on_failure: abort
        vars:
          base: "{tmp_path}/out"
        steps:
          - id: pick
            set: {{colour: blue}}
          - id: write
            run: test -e {tmp_path}/go && echo "{{{{ vars.colour }}}}" > {{{{ vars.base }}}}
    """)
    failed = runbook_cli("run", str(rb))
    assert failed.code == 1, failed.output
    (tmp_path / "go").touch()
    resumed = runbook_cli("resume", run_id_of(failed))
    assert resumed.code == 0, resumed.output
    assert (tmp_path / "out").read_text().strip() == "blue"


def test_rollback_plan_renders_the_runbooks_rollback_steps_too(
    runbook_cli, write_runbook, tmp_path
):
    rb = write_runbook(f"""
        version: 1
        name: release
        params:
          log: {{type: string, default: {tmp_path}/log}}
        steps:
          - id: one
            run: echo do-one >> {{{{ params.log }}}}
            undo: echo undo-one >> {{{{ params.log }}}}
        rollback:
          - id: tell
            run: echo rolled-back >> {{{{ params.log }}}}
    """)
    assert runbook_cli("run", str(rb)).code == 0
    plan = runbook_cli("rollback", "--plan", "last")
    assert plan.code == 0, plan.output
    assert f"tell: rollback step: echo rolled-back >> {tmp_path}/log" in plan.stdout


def test_a_saved_state_that_disagrees_with_the_audit_log_is_never_run_from(
    runbook_cli, write_runbook, tmp_path, state_dir
):
    """The saved state is a copy (it can be edited, or imported from elsewhere); the
    audit chain says which runbook the run ran."""
    import hashlib
    import json

    rb = write_runbook(
        "version: 1\nname: r\non_failure: abort\nsteps:\n"
        "  - id: one\n    run: 'true'\n  - id: two\n    run: exit 3\n"
    )
    evil = write_runbook(
        f"version: 1\nname: r\nsteps:\n  - id: two\n    run: touch {tmp_path}/evil\n",
        name="evil.yaml",
    )
    run = runbook_cli("run", str(rb))
    assert run.code == 1, run.output
    saved = state_dir / "runs" / f"{run_id_of(run)}.jsonl"
    lines = [json.loads(line) for line in saved.read_text().splitlines()]
    lines[0]["runbook"] = str(evil)
    lines[0]["runbook_sha256"] = hashlib.sha256(evil.read_bytes()).hexdigest()
    saved.write_text("".join(json.dumps(line) + "\n" for line in lines))
    for command in ("resume", "rollback"):
        refused = runbook_cli(command, run_id_of(run))
        assert refused.code == 2, refused.output
        assert "its saved state names runbook" in refused.stderr
    assert not (tmp_path / "evil").exists()
