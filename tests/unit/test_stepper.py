"""The stepper on its own: one step on one host, with real processes."""

from __future__ import annotations

import threading

from runbook_engine.record.events import Status
from tests.unit.engine_support import engine


def _one(tmp_path, steps: str, **kw):
    head = "version: 1\nname: t\nsecrets: {token: {env: TOKEN}}\nsteps:"
    built = engine(tmp_path, f"{head}\n{steps}", **kw)
    host = built.hosts()[0]
    results = {}
    for step in built.runbook.all_steps():
        result = built.stepper.run_step(step, host, threading.Event())
        host.record(step, result, in_saga=True)
        results[step.id] = result
    return results


def test_a_command_runs_and_its_output_and_json_are_read(tmp_path):
    results = _one(
        tmp_path,
        """
  - id: greet
    run: "echo '{\\"version\\": \\"1.2\\"}'"
  - id: after
    run: echo "{{ steps.greet.json.version }}"
""",
    )
    assert results["greet"].status is Status.CHANGED and results["greet"].rc == 0
    assert results["greet"].json == {"version": "1.2"}
    assert results["after"].stdout.strip() == "1.2"


def test_when_failed_when_and_changed_when_judge_the_outcome(tmp_path):
    results = _one(
        tmp_path,
        """
  - id: skipped
    when: "false"
    run: touch should-not-exist
  - id: grep_miss
    run: echo nothing here; exit 1
    failed_when: "'error' in steps.grep_miss.stdout"
  - id: read_only
    run: echo same
    changed_when: "false"
""",
    )
    assert results["skipped"].status is Status.SKIPPED
    assert not (tmp_path / "should-not-exist").exists()
    assert results["grep_miss"].status is Status.CHANGED  # rc 1, but not a failure
    assert results["read_only"].status is Status.OK


def test_until_retries_a_real_process_until_it_says_so(tmp_path):
    counter = tmp_path / "n"
    results = _one(
        tmp_path,
        f"""
  - id: poll
    run: echo x >> {counter}; wc -l < {counter}
    retries: {{attempts: 5, delay: 10ms, until: "steps.poll.stdout | int >= 3"}}
""",
    )
    assert results["poll"].attempts == 3 and results["poll"].ok
    assert counter.read_text().count("x") == 3


def test_a_timeout_kills_the_step_and_says_so(tmp_path):
    results = _one(tmp_path, "  - id: slow\n    timeout: 200ms\n    run: sleep 10\n")
    assert results["slow"].status is Status.FAILED and results["slow"].rc is None
    assert "timed out after 0.2s" in (results["slow"].message or "")


def test_a_render_error_fails_the_step_naming_it_and_where_before_running(tmp_path):
    results = _one(
        tmp_path,
        """
  - id: probe
    run: "echo '{}'"
  - id: typo
    run: touch {{ steps.probe.json.nope }} ran
""",
    )
    message = results["typo"].message or ""
    assert results["typo"].status is Status.FAILED
    assert "step 'typo' (" in message and "rb.yaml:8)" in message
    assert not (tmp_path / "ran").exists()


def test_secrets_are_masked_in_what_the_result_keeps(tmp_path):
    results = _one(
        tmp_path,
        """
  - id: leak
    run: echo "token={{ secrets.token }}"; exit 2
""",
        secrets={"token": "s3cr3t-v4lue"},
    )
    result = results["leak"]
    assert "s3cr3t-v4lue" not in (result.stdout + (result.command or ""))
    assert "token=***" in result.stdout and "***" in (result.command or "")
