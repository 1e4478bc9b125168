"""``assert:`` expressions that must all be true; a failure names the expression and
the values it looked at."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .. import render
from ..record.events import Status
from ..spec.model import AssertAction
from .outcome import Outcome

if TYPE_CHECKING:
    from ..spec.model import Action
    from . import ActionEnv


def run(action: Action, env: ActionEnv) -> Outcome:
    assert isinstance(action, AssertAction)
    failures = []
    for expression in action.expressions:
        if not env.renderer.evaluate(expression, "assert"):
            failures.append(
                f"assertion failed: `{expression}`{_values(expression, env)}"
            )
    display = " and ".join(action.expressions)
    if failures:
        return Outcome(
            status=Status.FAILED, message="; ".join(failures), command=display
        )
    return Outcome(status=Status.OK, command=display)


def _values(expression: str, env: ActionEnv) -> str:
    shown = []
    for path in render.value_paths(expression):
        try:
            value = env.renderer.evaluate(path, "assert")
        except Exception:
            continue
        text = json.dumps(value, default=str)
        shown.append(f"{path} = {text[:200]}")
    return f" ({'; '.join(shown)})" if shown else ""
