"""Step actions, one module per kind. Each handler takes the model action and an
``ActionEnv`` and returns an ``Outcome``; it renders its own fields just before use.

``HANDLERS`` maps the YAML key (``run``, ``http``, ...) to the handler.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import threading
    from pathlib import Path

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
    ) -> tuple[bool, str]: ...


@dataclass(slots=True, kw_only=True)
class ActionEnv:
    step: Step
    host: str
    transport: Transport
    render: Callable[[Any, str], Any]
    render_text: Callable[[str, str], str]
    evaluate: Callable[[str, str], Any]
    output: StepOutput
    cancel: threading.Event
    timeout: float | None
    env: Mapping[str, str]
    cwd: str | None
    base_dir: Path
    approver: Approver

    @property
    def where(self) -> str:
        return f"step {self.step.id!r}"


Handler = Callable[["Action", ActionEnv], "Outcome"]


def handler_for(kind: str) -> Handler:
    from . import approve, asserts, files, http, shell, simple

    table: dict[str, Handler] = {
        "run": shell.run,
        "argv": shell.run,
        "http": http.run,
        "assert": asserts.run,
        "approve": approve.run,
        "set": simple.set_vars,
        "sleep": simple.sleep,
        "copy": files.run,
        "template": files.run,
    }
    return table[kind]
