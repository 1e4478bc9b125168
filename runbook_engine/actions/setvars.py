"""``set:`` adds vars for later steps; ``"{{ expr }}"`` alone keeps its native type."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..record.events import Status
from ..spec.model import SetAction
from .outcome import Outcome

if TYPE_CHECKING:
    from ..spec.model import Action
    from . import ActionEnv


def run(action: Action, env: ActionEnv) -> Outcome:
    assert isinstance(action, SetAction)
    values = {
        name: env.renderer.value(value, f"set.{name}")
        for name, value in action.values.items()
    }
    return Outcome(
        status=Status.OK, set_vars=values, command=f"set {', '.join(values)}"
    )
