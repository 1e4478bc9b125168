"""Per-host run state: results, the template context, and the saga of completed steps
whose undo a rollback would run."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import render
from ..record.events import Status
from ..spec.params import resolve_params

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..record.results import StepResult
    from ..spec.model import Runbook, Scope, Step
    from ..transports.base import Transport


class IncludedSteps(dict[str, Any]):
    """``steps.<include id>``: the step results of an included runbook, by id (a
    type of its own so that ``plan`` can tell it from one step's result)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunInfo:
    id: str
    operator: str
    started_at: str
    runbook_dir: str = "."  # the directory of the runbook file, absolute


@dataclass(slots=True, kw_only=True)
class HostState:
    name: str
    address: str
    host_vars: Mapping[str, Any]
    transport: Transport
    results: dict[str, StepResult] = field(default_factory=dict)
    saga: list[tuple[Step, StepResult]] = field(default_factory=list)
    failed: bool = False
    changed: bool = False
    started: bool = False
    _views: dict[str, dict[str, Any]] = field(default_factory=dict)
    _vars: dict[str, dict[str, Any]] = field(default_factory=dict)
    _rendered: set[str] = field(default_factory=set)  # scopes whose vars: are done
    _params: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.failed:
            return "failed"
        return "changed" if self.changed else "ok"

    def record(self, step: Step, result: StepResult, *, in_saga: bool) -> None:
        self.results[step.id] = result
        self._scope_views(step.scope)[step.local_id] = result.view()
        if result.set_vars:
            self._vars.setdefault(step.scope.prefix, {}).update(result.set_vars)
        if result.changed:
            self.changed = True
        if in_saga:
            self.saga.append((step, result))

    def restore(
        self, runbook: Runbook, completed: Mapping[tuple[str, str], StepResult]
    ) -> None:
        """Take back what an earlier run completed on this host (resume and
        rollback): the results later steps read and the saga a rollback undoes,
        oldest first, as the runbook orders its steps. A skipped step (``when``
        false, or a ``run_once`` step that ran on another host) has nothing to undo
        here; one that failed or was cut short is undone only with
        ``undo_on_failure``, as in the run itself."""
        done = {step: r for (host, step), r in completed.items() if host == self.name}
        for step in runbook.all_steps():
            result = done.get(step.id)
            if result is not None:
                undoable = result.ok or step.undo_on_failure
                in_saga = result.status is not Status.SKIPPED and undoable
                self.record(step, result, in_saga=in_saga)
                self.started = True

    def _scope_views(self, scope: Scope) -> dict[str, Any]:
        """``steps`` of one scope; an included runbook's are also the including
        runbook's ``steps.<include id>`` (the same mapping, so it stays current)."""
        views = self._views.get(scope.prefix)
        if views is None:
            views = self._views[scope.prefix] = IncludedSteps()
            if scope.parent is not None:
                include_id = scope.prefix[len(scope.parent.prefix) : -1]
                self._scope_views(scope.parent)[include_id] = views
        return views


class ContextBuilder:
    """Builds ``params / vars / secrets / env / steps / host / run`` for a step."""

    def __init__(
        self,
        *,
        params: Mapping[str, Any],
        secrets: Mapping[str, str],
        run: RunInfo,
    ) -> None:
        self.params = dict(params)
        self.secrets = dict(secrets)
        self.run = {
            "id": run.id,
            "operator": run.operator,
            "started_at": run.started_at,
            "runbook_dir": run.runbook_dir,
        }
        self.env = dict(os.environ)

    def context(self, host: HostState, scope: Scope) -> dict[str, Any]:
        base = self._base(host, scope)
        if scope.prefix not in host._rendered:
            # the runbook's vars: once per host and scope; what `set:` steps gave
            # before (a resumed run, a run_once copy) wins over them
            declared = self._render_vars(scope, base)
            host._vars[scope.prefix] = {**declared, **host._vars.get(scope.prefix, {})}
            host._rendered.add(scope.prefix)
        base["vars"] = host._vars[scope.prefix]
        return base

    def _base(self, host: HostState, scope: Scope) -> dict[str, Any]:
        return {
            "params": self._params(host, scope),
            "vars": host._vars.get(scope.prefix, {}),
            "secrets": self.secrets,
            "env": self.env,
            "steps": host._scope_views(scope),
            "host": {
                "name": host.name,
                "address": host.address,
                "vars": host.host_vars,
            },
            "run": self.run,
        }

    def _params(self, host: HostState, scope: Scope) -> dict[str, Any]:
        if scope.parent is None:
            return self.params
        cached = host._params.get(scope.prefix)
        if cached is None:
            parent = self.context(host, scope.parent)
            given = render.render_value(
                dict(scope.with_), parent, f"include {scope.path}"
            )
            cached = resolve_params(scope.params, given)
            host._params[scope.prefix] = cached
        return cached

    def _render_vars(self, scope: Scope, base: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        base["vars"] = values
        for name, value in scope.vars.items():
            values[name] = render.render_value(value, base, f"var {name!r}")
        return values
