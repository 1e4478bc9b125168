"""``set:`` (adds vars for later steps) and ``sleep:`` (interruptible)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..record.events import Status
from ..spec.model import SetAction, SleepAction
from ..units import format_duration
from .outcome import Outcome

if TYPE_CHECKING:
    from ..spec.model import Action
    from . import ActionEnv


def set_vars(action: Action, env: ActionEnv) -> Outcome:
    assert isinstance(action, SetAction)
    values = {
        name: env.render(value, f"{env.where} set.{name}")
        for name, value in action.values.items()
    }
    return Outcome(
        status=Status.OK, set_vars=values, command=f"set {', '.join(values)}"
    )


def sleep(action: Action, env: ActionEnv) -> Outcome:
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
