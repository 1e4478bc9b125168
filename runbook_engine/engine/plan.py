"""``runbook plan``: what would run where, rendered as far as possible. Executes
nothing. With a ``probe`` (``runbook plan --probe``), the steps marked ``safe: true``
(they only read) really run, so that later steps render with real values; the caller
records them in the audit log.

A value that depends on a step that has not run is shown as ``<steps.ID.FIELD>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import render
from ..errors import RenderError
from ..spec.model import (
    Phase,
    Step,
)
from .hosts import IncludedSteps

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ..record.results import StepResult
    from .hosts import HostState
    from .stepper import Stepper

    Probe = Callable[[Step, list[HostState]], list[StepResult]]


# attributes Jinja's sandbox looks up on whatever it calls or filters: not step fields
_JINJA_PROBES = frozenset({"unsafe_callable", "alters_data", "jinja_pass_arg"})


class Unresolved(render.Placeholder):
    """Stands for a step result that is unknown at plan time."""

    def __init__(self, path: str) -> None:
        self._path = path

    def __getattr__(self, name: str) -> Unresolved:
        if name.startswith("_") or name in _JINJA_PROBES:
            raise AttributeError(name)
        return Unresolved(f"{self._path}.{name}")

    def __call__(self, *args: object, **kwargs: object) -> Unresolved:
        return Unresolved(f"{self._path}()")  # steps.x.stdout.split(): still unknown

    def __getitem__(self, key: object) -> Unresolved:
        return Unresolved(f"{self._path}[{key!r}]")

    def __str__(self) -> str:
        return f"<{self._path}>"

    def __iter__(self) -> Any:  # a loop over it shows one placeholder item
        return iter((Unresolved(f"{self._path}[*]"),))

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
    ran: str | None = None  # safe step probed: its real status
    probe: bool = False  # a safe step that --probe would run
    notes: list[str] = field(default_factory=list)


class _Views(dict[str, Any]):
    """``steps`` at plan time: real results of safe steps, Unresolved for the rest,
    an included runbook's steps (``steps.<include id>.<id>``) likewise."""

    def __init__(self, views: Mapping[str, Any], path: str = "steps") -> None:
        super().__init__(views)
        self._path = path

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        if isinstance(value, IncludedSteps):
            return _Views(value, f"{self._path}.{key}")
        return value

    def __missing__(self, key: str) -> Unresolved:
        return Unresolved(f"{self._path}.{key}")


def build_plan(
    steps_by_phase: Mapping[Phase, tuple[Step, ...]],
    hosts: list[HostState],
    stepper: Stepper,
    *,
    probe: Probe | None,
) -> list[PlannedStep]:
    planned: list[PlannedStep] = []
    for phase in Phase:
        for step in steps_by_phase.get(phase, ()):
            planned.append(_plan_step(step, hosts, stepper, probe))
    return planned


def _plan_step(
    step: Step, hosts: list[HostState], stepper: Stepper, probe: Probe | None
) -> PlannedStep:
    targets = hosts[:1] if step.run_once else hosts
    descriptions: dict[str, list[str]] = {}
    undo_text: str | None = None
    when_text: str | None = None
    for host in targets:
        shown = _shown_for(step, host, stepper)
        descriptions.setdefault(step.action.describe(shown), []).append(host.name)
        if step.undo is not None:
            undo_text = step.undo.action.describe(shown)
        if step.when is not None:
            when_text = f"when {step.when}: {shown.decide(step.when)}"
    ran = None
    probed = step.safe and phase_runs_safe(step)
    if probed and probe is not None:
        statuses = {result.status.value for result in probe(step, targets)}
        ran = ", ".join(sorted(statuses))
    text = "\n".join(
        f"{desc}" if len(descriptions) == 1 else f"[{', '.join(names)}] {desc}"
        for desc, names in descriptions.items()
    )
    return PlannedStep(
        phase=step.phase.value,
        step=step,
        hosts=[h.name for h in targets],
        action=text,
        undo=undo_text,
        when=when_text,
        ran=ran,
        probe=probed and probe is None,
        notes=["control machine"] if step.local else [],
    )


def _shown_for(step: Step, host: HostState, stepper: Stepper) -> _Shown:
    context = stepper.contexts.context(host, step.scope)
    context["steps"] = _Views(context["steps"])
    return _Shown(render.Renderer(context, f"step {step.id!r}"))


def describe_undo(step: Step, host: HostState, stepper: Stepper) -> str:
    """A step's undo, rendered with what the host's results say."""
    assert step.undo is not None
    return step.undo.action.describe(_shown_for(step, host, stepper))


def describe_step(step: Step, host: HostState, stepper: Stepper) -> str:
    """A step's action, rendered with what the host's results say."""
    return step.action.describe(_shown_for(step, host, stepper))


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
            decided = bool(self.renderer.evaluate(expression))
        except RenderError:  # it reads a step result: unknown before the run
            return "decided at run time"
        return "true" if decided else "false (skipped)"
