"""Retries as tenacity runs them for a step: which failures are retried, the delays
announced, and an interrupt that ends the wait; attempts run real processes."""

from __future__ import annotations

import subprocess
import threading
import time

from runbook_engine.actions.outcome import Outcome
from runbook_engine.engine.retries import run_with_retries
from runbook_engine.record.events import Status
from runbook_engine.spec.model import Retries


def _process(script: str) -> Outcome:
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    status = Status.CHANGED if done.returncode == 0 else Status.FAILED
    return Outcome(status=status, rc=done.returncode, stderr=done.stderr)


def _attempts(tmp_path, outcomes: list[str]):
    """An attempt function whose n-th call runs the n-th script."""
    calls: list[int] = []

    def attempt(number: int) -> tuple[Outcome, bool]:
        calls.append(number)
        return _process(outcomes[min(number, len(outcomes)) - 1]), True

    return attempt, calls


def test_only_matching_failures_are_retried_with_growing_delays(tmp_path):
    attempt, calls = _attempts(tmp_path, ["exit 75", "exit 75", "exit 0"])
    retried: list[tuple[int, str, float]] = []
    policy = Retries(attempts=5, delay=0.01, backoff=2, retry_on_rc=(75,))
    outcome, count = run_with_retries(
        policy,
        attempt,
        lambda n, cause, delay: retried.append((n, cause, delay)),
        threading.Event(),
    )
    assert outcome.status.succeeded and count == 3 and calls == [1, 2, 3]
    assert [n for n, _, _ in retried] == [1, 2]
    assert retried[1][2] > retried[0][2]  # backoff
    attempt, calls = _attempts(tmp_path, ["exit 1"])
    outcome, count = run_with_retries(
        policy, attempt, lambda *a: None, threading.Event()
    )
    assert not outcome.status.succeeded and count == 1  # rc 1 is not in retry_on


def test_a_stderr_pattern_selects_what_is_retried(tmp_path):
    attempt, _ = _attempts(
        tmp_path, ["echo 'database is locked' >&2; exit 1", "exit 0"]
    )
    policy = Retries(attempts=3, delay=0.01, retry_on_stderr="locked")
    outcome, count = run_with_retries(
        policy, attempt, lambda *a: None, threading.Event()
    )
    assert outcome.status.succeeded and count == 2


def test_an_interrupt_ends_the_wait_between_attempts(tmp_path):
    attempt, calls = _attempts(tmp_path, ["exit 1"])
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    began = time.monotonic()
    outcome, _ = run_with_retries(
        Retries(attempts=3, delay=30), attempt, lambda *a: None, cancel
    )
    assert outcome.interrupted and time.monotonic() - began < 5
    assert calls == [1]
