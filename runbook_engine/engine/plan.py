"""``runbook plan``: what would run where, rendered as far as possible. Executes
nothing, except steps marked ``safe: true`` (they only read), which really run so that
later steps render with real values.

A value that depends on a step that has not run is shown as ``<steps.ID.FIELD>``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import render
from ..errors import RenderError
from ..spec.model import (
    Phase,
    Step,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .hosts import HostState
    from .stepper import Stepper


class Unresolved:
    """Stands for a step result that is unknown at plan time."""

    def __init__(self, path: str) -> None:
        self._path = path

    def __getattr__(self, name: str) -> Unresolved:
        if name.startswith("_"):
            raise AttributeError(name)
        return Unresolved(f"{self._path}.{name}")

    def __getitem__(self, key: object) -> Unresolved:
        return Unresolved(f"{self._path}[{key!r}]")

    def __str__(self) -> str:
        return f"<{self._path}>"

    def __iter__(self) -> Any:
        return iter(())

    def __bool__(self) -> bool:
        raise RenderError(f"depends on {self._path}, unknown before the run")

    def _compare(self, other: object) -> bool:
        return self.__bool__()

    __eq__ = __ne__ = __lt__ = __gt__ = __le__ = __ge__ = _compare
    __hash__ = object.__hash__


@dataclass(slots=True, kw_only=True)
class PlannedStep:
    phase: str
    step: Step
    hosts: list[str]
    action: str
    undo: str | None
    when: str | None = None
    ran: str | None = None  # safe step: its real status
    notes: list[str] = field(default_factory=list)


class _Views(dict[str, Any]):
    """``steps`` at plan time: real results of safe steps, Unresolved for the rest."""

    def __missing__(self, key: str) -> Unresolved:
        return Unresolved(f"steps.{key}")


def build_plan(
    steps_by_phase: Mapping[Phase, tuple[Step, ...]],
    hosts: list[HostState],
    stepper: Stepper,
) -> list[PlannedStep]:
    cancel = threading.Event()
    planned: list[PlannedStep] = []
    for phase in Phase:
        for step in steps_by_phase.get(phase, ()):
            planned.append(_plan_step(step, hosts, stepper, cancel))
    return planned


def _plan_step(
    step: Step, hosts: list[HostState], stepper: Stepper, cancel: threading.Event
) -> PlannedStep:
    targets = hosts[:1] if step.run_once else hosts
    descriptions: dict[str, list[str]] = {}
    undo_text: str | None = None
    when_text: str | None = None
    ran: str | None = None
    for host in targets:
        context = stepper.contexts.context(host, step.scope)
        context["steps"] = _Views(context["steps"])
        shown = _Shown(render.Renderer(context, f"step {step.id!r}"))
        descriptions.setdefault(step.action.describe(shown), []).append(host.name)
        if step.undo is not None:
            undo_text = step.undo.action.describe(shown)
        if step.when is not None:
            when_text = f"when {step.when}: {shown.decide(step.when)}"
        if step.safe and phase_runs_safe(step):
            result = stepper.run_step(step, host, cancel)
            host.record(step, result, in_saga=False)
            ran = result.status.value
    where = "control machine" if step.local else None
    text = "\n".join(
        f"{desc}" if len(descriptions) == 1 else f"[{', '.join(names)}] {desc}"
        for desc, names in descriptions.items()
    )
    notes = [where] if where else []
    return PlannedStep(
        phase=step.phase.value,
        step=step,
        hosts=[h.name for h in targets],
        action=text,
        undo=undo_text,
        when=when_text,
        ran=ran,
        notes=notes,
    )


def phase_runs_safe(step: Step) -> bool:
    return step.phase in (Phase.PRECONDITIONS, Phase.STEPS, Phase.VERIFY)


class _Shown:
    """Shows templates rendered as far as the plan knows; what cannot be rendered
    says why instead of failing the plan."""

    def __init__(self, renderer: render.Renderer) -> None:
        self.renderer = renderer

    def text(self, source: str) -> str:
        try:
            return self.renderer.text(source)
        except RenderError as exc:
            return f"<cannot render: {exc}>"

    def value(self, value: Any) -> str:
        try:
            return str(self.renderer.value(value))
        except RenderError as exc:
            return f"<cannot render: {exc}>"

    def decide(self, expression: str) -> str:
        try:
            decided = self.renderer.evaluate(expression)
        except RenderError:
            return "decided at run time"
        return "true" if decided else "false (skipped)"
