"""``runbook approve RUN_ID STEP [--deny]``: answer an approval gate that waits in
another run, from any machine that reaches the same store.

The answer is a ``Grant`` in the store (one per run and step, never replaced); the
waiting gate finds it within ``approval.GRANT_POLL`` seconds and records the
``approval`` in its own run's audit trail, with the granter as operator and
``via: remote``. Only a gate that is waiting now can be answered (its
``approval.waiting`` record says so, and which word it wants typed): a finished run,
a gate that was answered, or one not reached yet are refused (exit 2).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..record.audit import utc_now
from .request import operator_name
from .store import Grant

if TYPE_CHECKING:
    from .store import StateStore

ANSWER_WAIT = 5.0  # seconds ``approve`` waits to see the run record the answer


def grant_approval(
    store: StateStore,
    wanted: str,
    step: str,
    *,
    approved: bool,
    confirm: str | None = None,
) -> Grant:
    """Store the answer to run ``wanted``'s gate ``step``; ``InputError`` when no
    such gate waits, the word is missing or wrong, or it was answered already."""
    run_id = _running(store, wanted)
    waiting = waiting_gates(store.run_records(run_id))
    if step not in waiting:
        listed = ", ".join(sorted(waiting)) or "none"
        raise InputError(
            f"run {run_id} is not waiting for an approval of step {step!r}"
            f" (gates waiting now: {listed})"
        )
    word = waiting[step].get("confirm")
    if approved and word is not None and confirm != word:
        given = "" if confirm is None else f" ({confirm!r} is not it)"
        raise InputError(
            f"step {step!r} asks to type {word!r} to approve{given}: add --confirm"
            f" {word}"
        )
    grant = Grant(
        run_id=run_id,
        step=step,
        approved=approved,
        operator=operator_name(),
        granted_at=utc_now(),
        confirm=confirm if approved else None,
    )
    earlier = store.put_grant(grant)
    if earlier is not None:
        verdict = "approved" if earlier.approved else "denied"
        raise InputError(
            f"step {step!r} of run {run_id} was already {verdict} by"
            f" {earlier.operator} at {earlier.granted_at}"
        )
    return grant


def waiting_gates(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The gates of a run that wait now: step id -> its ``approval.waiting``."""
    waiting: dict[str, dict[str, Any]] = {}
    for record in records:
        event, step = record.get("event"), str(record.get("step", ""))
        if event == "approval.waiting":
            waiting[step] = record
        elif event == "approval":
            waiting.pop(step, None)
    return waiting


def recorded_answer(
    store: StateStore, run_id: str, step: str, *, timeout: float = ANSWER_WAIT
) -> dict[str, Any] | None:
    """The ``approval`` record the waiting run made of a remote answer, once it
    has (None when it has not within ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        for record in store.run_records(run_id):
            if (
                record.get("event") == "approval"
                and record.get("step") == step
                and record.get("via") == "remote"
            ):
                return record
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


def _running(store: StateStore, wanted: str) -> str:
    run = store.find_run(wanted)
    if run.status is not None:
        raise InputError(
            f"run {run.run_id} has finished ({run.status}): no gate waits in it"
        )
    return run.run_id
