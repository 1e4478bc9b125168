"""Step actions, one module per kind. Each module's ``run`` takes the model action
and an ``ActionEnv`` and returns an ``Outcome``; it renders its own fields just before
use. How an action reads in plan and docs is the model's (``Action.describe``).

Adding a step kind: the schema, ``spec/model.py`` (the action class with ``kind`` and
``describe``, and ``parse_action``), one module here, and its line in ``_MODULES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import threading
    from pathlib import Path

    from ..render import Renderer
    from ..spec.model import Action, Step
    from ..transports.base import Transport
    from ..transports.output import StepOutput
    from .outcome import Outcome


class Approver(Protocol):
    def ask(
        self,
        step: Step,
        host: str,
        message: str,
        confirm: str | None,
        timeout: float | None,
        cancel: threading.Event | None = None,
    ) -> tuple[bool, str]: ...


@dataclass(slots=True, kw_only=True)
class ActionEnv:
    step: Step
    host: str
    transport: Transport
    renderer: Renderer
    output: StepOutput
    cancel: threading.Event
    timeout: float | None
    env: Mapping[str, str]
    cwd: str | None
    base_dir: Path
    approver: Approver
    announce: Callable[[str], None]  # the command about to run (shown with -v)


Handler = Callable[["Action", ActionEnv], "Outcome"]


# step kind -> the module that runs it (imported on first use)
_MODULES = {
    "run": "shell",
    "argv": "shell",
    "http": "http",
    "assert": "asserts",
    "approve": "approve",
    "set": "setvars",
    "sleep": "sleep",
    "copy": "files",
    "template": "files",
}


def handler_for(kind: str) -> Handler:
    """The ``run`` function of the module for a step kind."""
    module = importlib.import_module(f".{_MODULES[kind]}", __name__)
    handler: Handler = module.run
    return handler
