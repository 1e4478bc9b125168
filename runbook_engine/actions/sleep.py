"""``sleep:`` waits, and an interrupt ends the wait at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..record.events import Status
from ..spec.model import SleepAction
from ..units import format_duration
from .outcome import Outcome

if TYPE_CHECKING:
    from ..spec.model import Action
    from . import ActionEnv


def run(action: Action, env: ActionEnv) -> Outcome:
    assert isinstance(action, SleepAction)
    display = f"sleep {format_duration(action.seconds)}"
    if env.cancel.wait(action.seconds):
        return Outcome(
            status=Status.FAILED,
            message="interrupted",
            interrupted=True,
            command=display,
        )
    return Outcome(status=Status.OK, command=display)
