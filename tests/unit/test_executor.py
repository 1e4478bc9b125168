"""The executor on its own, with real local processes on several "hosts": what a
failure means, the saga's order, go/no-go, run_once, and a drill's verdict."""

from __future__ import annotations

from runbook_engine.record.events import RunStatus
from tests.unit.engine_support import engine


def _log(tmp_path):
    path = tmp_path / "log"
    return path.read_text().split() if path.exists() else []


SAGA = """
    version: 1
    name: saga
    {extra}
    steps:
      - id: one
        run: echo {{{{ host.name }}}}-one >> {log}
        undo: echo {{{{ host.name }}}}-undo-one >> {log}
      - id: two
        run: echo {{{{ host.name }}}}-two >> {log}; {fail}
        undo: echo {{{{ host.name }}}}-undo-two >> {log}
        undo_on_failure: {undo_on_failure}
      - id: three
        run: echo {{{{ host.name }}}}-three >> {log}
        undo: echo {{{{ host.name }}}}-undo-three >> {log}
"""


def _saga(tmp_path, *, extra="", fail="true", undo_on_failure="false"):
    return engine(
        tmp_path,
        SAGA.format(
            extra=extra,
            log=tmp_path / "log",
            fail=fail,
            undo_on_failure=undo_on_failure,
        ),
    )


def test_a_failure_undoes_completed_steps_newest_first(tmp_path):
    built = _saga(tmp_path, fail='[ "{{ host.name }}" != b ]')
    report = built.executor(built.hosts("a", "b")).execute()
    assert report.status is RunStatus.ROLLED_BACK
    log = _log(tmp_path)
    # b failed at two; a had done two: both roll back, each newest first
    assert log.index("a-undo-two") < log.index("a-undo-one")
    assert "b-undo-two" not in log and "b-undo-one" in log
    assert "a-three" not in log and "b-three" not in log
    assert [u.step for u in report.undos if u.host == "a"] == ["two", "one"]


def test_undo_on_failure_undoes_the_failed_step_too(tmp_path):
    built = _saga(tmp_path, fail="exit 3", undo_on_failure="true")
    report = built.executor(built.hosts("a")).execute()
    assert report.status is RunStatus.ROLLED_BACK
    assert _log(tmp_path)[-2:] == ["a-undo-two", "a-undo-one"]


def test_rollback_scope_failed_leaves_the_healthy_host_alone(tmp_path):
    built = _saga(
        tmp_path,
        fail='[ "{{ host.name }}" != b ]',
        extra="max_fail_percentage: 50",
    )
    report = built.executor(built.hosts("a", "b"), rollback_scope="failed").execute()
    assert report.status is RunStatus.ROLLED_BACK
    log = _log(tmp_path)
    assert "a-three" in log and not any(line.startswith("a-undo") for line in log)
    assert "b-undo-one" in log


def test_on_failure_continue_goes_on_and_abort_stops_without_undo(tmp_path):
    built = _saga(tmp_path, fail="exit 3", extra="on_failure: continue")
    report = built.executor(built.hosts("a")).execute()
    assert report.status is RunStatus.FAILED and "a-three" in _log(tmp_path)
    (tmp_path / "log").unlink()
    built = _saga(tmp_path, fail="exit 3", extra="on_failure: abort")
    report = built.executor(built.hosts("a")).execute()
    assert report.status is RunStatus.FAILED
    assert _log(tmp_path) == ["a-one", "a-two"]  # no undo, nothing after


def test_a_failed_precondition_is_no_go_and_every_check_still_runs(tmp_path):
    built = engine(
        tmp_path,
        f"""
        version: 1
        name: gate
        preconditions:
          - id: first
            run: exit 1
          - id: second
            run: touch {tmp_path}/second-ran
        steps:
          - id: change
            run: touch {tmp_path}/changed
        """,
    )
    report = built.executor(built.hosts("a", "b")).execute()
    assert report.status is RunStatus.NO_GO
    assert [row.go for row in report.checks] == [False, False, True, True]
    assert (tmp_path / "second-ran").exists() and not (tmp_path / "changed").exists()


def test_run_once_runs_on_one_host_and_the_others_see_its_result(tmp_path):
    built = engine(
        tmp_path,
        f"""
        version: 1
        name: once
        steps:
          - id: token
            run_once: true
            run: echo {{{{ host.name }}}} >> {tmp_path}/ran; echo shared
          - id: use
            run: test "{{{{ steps.token.stdout | trim }}}}" = shared
        """,
    )
    report = built.executor(built.hosts("a", "b", "c")).execute()
    assert report.status is RunStatus.SUCCEEDED
    assert (tmp_path / "ran").read_text().split() == ["a"]


def test_a_drill_fails_when_a_check_says_something_else_after_the_rollback(tmp_path):
    state = tmp_path / "state"
    state.write_text("v1\n")
    built = engine(
        tmp_path,
        f"""
        version: 1
        name: drill
        preconditions:
          - id: version
            run: cat {state}
        steps:
          - id: upgrade
            run: echo v2 > {state}
            undo: "true"
        """,
    )
    report = built.executor(built.hosts("a"), fail_at="upgrade").execute()
    assert report.status is RunStatus.ROLLED_BACK and report.drill is not None
    assert not report.drill.passed
    assert any("-v1" in d and "+v2" in d for d in report.drill.differences)
