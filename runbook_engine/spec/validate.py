"""Semantic checks the schema cannot express: unique step ids, template syntax, and
references to params, secrets, vars and steps that exist and run earlier.

Works on one schema-valid document at a time (includes are checked when they are
loaded). Every problem is reported with its position, not just the first.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .. import render
from ..diagnostics import Diagnostic, Position

_ORDERED = ("preconditions", "steps", "verify")
_LATE = ("batch_gate", "rollback", "finally")
_EXPRESSION_KEYS = ("when", "failed_when", "changed_when")
# fields evaluated after the step's own action ran, so they may name the step itself
_SELF_KEYS = ("retries", "failed_when", "changed_when", "undo")


@dataclass(frozen=True, slots=True)
class _Template:
    path: tuple[str | int, ...]
    source: str
    expression: bool


def check_document(
    data: Mapping[str, Any], positions: Any, text: str = ""
) -> list[Diagnostic]:
    checker = _Checker(data, positions, text)
    checker.run()
    return checker.diagnostics


class _Checker:
    def __init__(self, data: Mapping[str, Any], positions: Any, text: str) -> None:
        self.lines = text.splitlines()
        self.data = data
        self.positions = positions
        self.diagnostics: list[Diagnostic] = []
        self.params = set((data.get("params") or {}).keys())
        self.secrets = set((data.get("secrets") or {}).keys())
        self.vars: set[str] = set()
        self.globals = render.known_globals()

    def error(
        self, path: tuple[str | int, ...], message: str, key: bool = False
    ) -> None:
        pos: Position = self.positions.key(path) if key else self.positions.value(path)
        self.diagnostics.append(Diagnostic.at(pos, message))

    def run(self) -> None:
        self._check_vars()
        hosts = self.data.get("hosts")
        for i, pattern in enumerate([hosts] if isinstance(hosts, str) else hosts or []):
            path: tuple[str | int, ...] = (
                ("hosts",) if isinstance(hosts, str) else ("hosts", i)
            )
            self._check_template(_Template(path, pattern, False), "hosts", set())
        seen: dict[str, tuple[str | int, ...]] = {}
        done: set[str] = set()
        for phase in _ORDERED:
            for index, step in enumerate(self.data.get(phase) or []):
                self._check_step(phase, index, step, seen, done)
                done.add(step["id"])
        for phase in _LATE:
            late_done = set(done)
            for index, step in enumerate(self.data.get(phase) or []):
                self._check_step(phase, index, step, seen, late_done)
                late_done.add(step["id"])

    def _check_vars(self) -> None:
        for name, value in (self.data.get("vars") or {}).items():
            for template in _templates_in(value, ("vars", name)):
                self._check_template(template, f"var {name!r}", set())
            self.vars.add(name)

    def _check_step(
        self,
        phase: str,
        index: int,
        step: Mapping[str, Any],
        seen: dict[str, tuple[str | int, ...]],
        done: set[str],
    ) -> None:
        step_id = step["id"]
        path: tuple[str | int, ...] = (phase, index)
        if step_id in seen:
            first = self.positions.value((*seen[step_id], "id"))
            self.error(
                (*path, "id"),
                f"duplicate step id {step_id!r} (first used at line {first.line})",
            )
        else:
            seen[step_id] = path
        where = f"step {step_id!r}"
        for key, value in step.items():
            if key in ("id", "name", "description", "include"):
                continue
            allowed = done | {step_id} if key in _SELF_KEYS else done
            for template in _templates_in(value, (*path, key), key):
                self._check_template(template, where, allowed)
        if "set" in step:
            self.vars.update(step["set"].keys())

    def _check_template(
        self, template: _Template, where: str, steps_done: set[str]
    ) -> None:
        try:
            undeclared, refs = render.references(
                template.source, expression=template.expression
            )
        except render.TemplateSyntaxError as exc:
            self._syntax_error(template, where, exc)
            return
        for name in sorted(undeclared - set(render.ROOTS) - self.globals):
            self.error(
                template.path,
                f"{where}: undefined name {name!r}{_hint(name, render.ROOTS)}",
            )
        for root, key in sorted(refs):
            message = self._reference_problem(root, key, steps_done)
            if message:
                self.error(template.path, f"{where}: {message}")

    def _reference_problem(
        self, root: str, key: str, steps_done: set[str]
    ) -> str | None:
        known = {"params": self.params, "secrets": self.secrets, "vars": self.vars}
        if root in known and key not in known[root]:
            kind = {"params": "param", "secrets": "secret", "vars": "var"}[root]
            return f"unknown {kind} {root}.{key}{_hint(key, known[root])}"
        if root == "steps" and key not in steps_done:
            all_ids = {
                s["id"]
                for phase in (*_ORDERED, *_LATE)
                for s in self.data.get(phase) or []
            }
            if key in all_ids:
                return f"steps.{key} is used before step {key!r} runs"
            return f"unknown step steps.{key}{_hint(key, all_ids)}"
        return None

    def _is_block(self, pos: Position) -> bool:
        """A literal or folded block scalar: its text starts on the next line."""
        if pos.line - 1 >= len(self.lines):
            return False
        return self.lines[pos.line - 1][pos.col - 1 : pos.col] in ("|", ">")

    def _syntax_error(self, template: _Template, where: str, exc: Any) -> None:
        pos = self.positions.value(template.path)
        line, col = pos.line, pos.col
        lineno = getattr(exc, "lineno", 1) or 1
        block = self._is_block(pos)
        if lineno > 1 or block:
            line, col = pos.line + lineno - (0 if block else 1), 1
        self.diagnostics.append(
            Diagnostic(
                pos.path, line, col, f"{where}: template syntax error: {exc.message}"
            )
        )


def _templates_in(
    value: Any, path: tuple[str | int, ...], key: str | None = None
) -> Iterator[_Template]:
    """Every template string inside a step field (expressions for expression keys)."""
    if key in _EXPRESSION_KEYS and isinstance(value, str):
        yield _Template(path, value, True)
        return
    if key == "assert":
        for i, expr in enumerate([value] if isinstance(value, str) else value):
            yield _Template(path if isinstance(value, str) else (*path, i), expr, True)
        return
    if key == "retries" and isinstance(value, Mapping):
        if isinstance(value.get("until"), str):
            yield _Template((*path, "until"), value["until"], True)
        return
    if isinstance(value, str):
        if render.is_template(value):
            yield _Template(path, value, False)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _templates_in(v, (*path, k), k if key == "undo" else None)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _templates_in(v, (*path, i))


def _hint(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
