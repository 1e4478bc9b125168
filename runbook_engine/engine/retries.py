"""A step's ``retries`` as a tenacity policy. The only module that imports tenacity.

An attempt is retried when it failed and ``retry_on`` (if given) matches the failure,
or when it succeeded but ``until`` is still false. Auth and host key failures are never
retried; a dropped connection only with ``retry_on: {connection_lost: true}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from ..actions.outcome import Outcome
from ..record.events import Status

if TYPE_CHECKING:
    import threading

    from ..spec.model import Retries

Attempt = Callable[[int], tuple[Outcome, bool]]  # -> (outcome, until_satisfied)
OnRetry = Callable[[int, str, float], None]  # attempt, cause, next delay (s)


class Interrupted(Exception):
    pass


def retry_cause(policy: Retries, outcome: Outcome, until_ok: bool) -> str | None:
    """Why this attempt should be retried, or None to stop."""
    if outcome.interrupted:
        return None
    if outcome.status.succeeded:
        return None if until_ok else "until is still false"
    if not outcome.retryable:
        return None
    if outcome.connection_lost and not policy.retry_on_connection_lost:
        return None
    if policy.retry_on_rc is not None or policy.retry_on_stderr is not None:
        rc_match = policy.retry_on_rc is not None and outcome.rc in policy.retry_on_rc
        err_match = policy.retry_on_stderr is not None and bool(
            re.search(policy.retry_on_stderr, outcome.stderr)
        )
        if not (rc_match or err_match or outcome.connection_lost):
            return None
    return outcome.message or f"exit code {outcome.rc}"


def run_with_retries(
    policy: Retries, attempt: Attempt, on_retry: OnRetry, cancel: threading.Event
) -> tuple[Outcome, int]:
    """Run ``attempt`` until it needs no retry or attempts run out.
    Returns the last outcome and the number of attempts made."""
    if policy.attempts <= 1:
        outcome, _ = attempt(1)
        return outcome, 1
    causes: dict[int, str | None] = {}

    def call(state_attempt: list[int]) -> Outcome:
        state_attempt[0] += 1
        outcome, until_ok = attempt(state_attempt[0])
        causes[state_attempt[0]] = retry_cause(policy, outcome, until_ok)
        return outcome

    def should_retry(_: Outcome) -> bool:
        return causes.get(counter[0]) is not None

    def before_sleep(state: RetryCallState) -> None:
        delay = state.next_action.sleep if state.next_action else 0.0
        on_retry(state.attempt_number, causes.get(state.attempt_number) or "", delay)

    def sleep(seconds: float) -> None:
        if cancel.wait(seconds):
            raise Interrupted

    wait: Any = wait_exponential(
        multiplier=policy.delay,
        exp_base=policy.backoff,
        min=policy.delay,
        max=policy.max_delay if policy.max_delay is not None else float("inf"),
    )
    if policy.jitter:
        wait = wait + wait_random(0, policy.jitter)
    counter = [0]
    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait,
        retry=retry_if_result(should_retry),
        before_sleep=before_sleep,
        sleep=sleep,
        retry_error_callback=lambda state: (
            state.outcome.result() if state.outcome else None
        ),
    )
    try:
        outcome = retrying(call, counter)
    except Interrupted:
        outcome = Outcome(status=Status.FAILED, message="interrupted", interrupted=True)
    return outcome, max(counter[0], 1)
