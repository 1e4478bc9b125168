"""``approve:`` a manual gate. The asking (TTY prompt, ``--yes``, ``--approve``, a
grant from ``runbook approve``, fail-closed without a TTY) is the executor's
``Approver``; this renders the question."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..record.events import Status
from ..spec.model import ApproveAction
from .outcome import Outcome

if TYPE_CHECKING:
    from ..spec.model import Action
    from . import ActionEnv


def run(action: Action, env: ActionEnv) -> Outcome:
    assert isinstance(action, ApproveAction)
    message = env.renderer.text(action.message, "approve")
    confirm = None
    if action.confirm is not None:
        confirm = env.renderer.text_of(action.confirm, "approve.confirm")
    approved, how = env.approver.ask(
        env.step, env.host, message, confirm, action.timeout, env.cancel
    )
    display = f"approve: {message}"
    if approved:
        return Outcome(status=Status.OK, command=display, message=f"approved ({how})")
    return Outcome(
        status=Status.FAILED,
        command=display,
        message=f"not approved ({how})",
        retryable=False,
    )
