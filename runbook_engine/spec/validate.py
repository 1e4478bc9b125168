"""Semantic checks the schema cannot express: unique step ids, template syntax,
templates that try to leave the sandbox, commands too long for one argument, and
references to params, secrets, vars and steps that exist and run earlier.

Works on one document at a time (includes are checked when they are loaded), and on
what is sound in it: the schema may have refused parts of the document, so nothing
here assumes a shape; a value of the wrong type is skipped (the schema reports it).
Every problem is reported with its position, not just the first.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .. import render
from ..diagnostics import Diagnostic, Position
from ..units import parse_duration
from .model import MAX_COMMAND_BYTES, fits_in_one_argument, parse_param
from .params import check_default

_ORDERED = ("preconditions", "steps", "verify")
_LATE = ("batch_gate", "rollback", "finally")
_EXPRESSION_KEYS = ("when", "failed_when", "changed_when")
# fields evaluated after the step's own action ran, so they may name the step itself
_SELF_KEYS = ("retries", "failed_when", "changed_when", "undo")

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class _Template:
    path: Path
    source: str
    expression: bool


def check_document(
    data: Mapping[str, Any], positions: Any, text: str = ""
) -> list[Diagnostic]:
    checker = _Checker(data, positions, text)
    checker.run()
    return sorted(checker.diagnostics, key=lambda d: (d.line, d.col))


def _names(value: Any) -> set[str]:
    return (
        {k for k in value if isinstance(k, str)}
        if isinstance(value, Mapping)
        else set()
    )


def _steps(value: Any) -> Iterator[tuple[int, Mapping[str, Any]]]:
    if isinstance(value, list):
        for index, step in enumerate(value):
            if isinstance(step, Mapping):
                yield index, step


def _step_id(step: Mapping[str, Any]) -> str | None:
    step_id = step.get("id")
    return step_id if isinstance(step_id, str) and step_id else None


class _Checker:
    def __init__(self, data: Mapping[str, Any], positions: Any, text: str) -> None:
        self.lines = text.splitlines()
        self.data = data
        self.positions = positions
        self.diagnostics: list[Diagnostic] = []
        self.params = _names(data.get("params"))
        self.secrets = _names(data.get("secrets"))
        self.vars: set[str] = set()
        self.globals = render.known_globals()
        self.all_ids = {
            step_id
            for phase in (*_ORDERED, *_LATE)
            for _, step in _steps(data.get(phase))
            if (step_id := _step_id(step))
        }

    def error(self, path: Path, message: str, key: bool = False) -> None:
        pos: Position = self.positions.key(path) if key else self.positions.value(path)
        self.diagnostics.append(Diagnostic.at(pos, message))

    def run(self) -> None:
        self._check_vars()
        self._check_param_defaults()
        self._check_timeouts(self.data, (), "the runbook")
        hosts = self.data.get("hosts")
        patterns = [hosts] if isinstance(hosts, str) else hosts
        for i, pattern in enumerate(patterns if isinstance(patterns, list) else []):
            path: Path = ("hosts",) if isinstance(hosts, str) else ("hosts", i)
            if isinstance(pattern, str):
                self._check_template(_Template(path, pattern, False), "hosts", set())
        seen: dict[str, Path] = {}
        done: set[str] = set()
        for phase in _ORDERED:
            for index, step in _steps(self.data.get(phase)):
                self._check_step(phase, index, step, seen, done)
        for phase in _LATE:
            late_done = set(done)
            for index, step in _steps(self.data.get(phase)):
                self._check_step(phase, index, step, seen, late_done)

    def _check_param_defaults(self) -> None:
        params = self.data.get("params")
        for name, data in params.items() if isinstance(params, Mapping) else ():
            if isinstance(data, Mapping) and "default" in data:
                problem = check_default(parse_param(str(name), data))
                if problem:
                    self.error(("params", name, "default"), problem)

    def _check_vars(self) -> None:
        values = self.data.get("vars")
        for name, value in values.items() if isinstance(values, Mapping) else ():
            for template in _templates_in(value, ("vars", name)):
                self._check_template(template, f"var {name!r}", set())
            self.vars.add(name)

    def _check_step(
        self,
        phase: str,
        index: int,
        step: Mapping[str, Any],
        seen: dict[str, Path],
        done: set[str],
    ) -> None:
        step_id = _step_id(step)
        path: Path = (phase, index)
        if step_id is not None and step_id in seen:
            first = self.positions.value((*seen[step_id], "id"))
            self.error(
                (*path, "id"),
                f"duplicate step id {step_id!r} (first used at line {first.line})",
            )
        elif step_id is not None:
            seen[step_id] = path
        where = f"step {step_id!r}" if step_id else f"step #{index + 1} in {phase!r}"
        own = {step_id} if step_id else set()
        for key, value in step.items():
            if key in ("id", "name", "description", "include"):
                continue
            allowed = done | own if key in _SELF_KEYS else done
            for template in _templates_in(value, (*path, key), key):
                self._check_template(template, where, allowed)
        self._check_command_sizes(step, path, where)
        self._check_timeouts(step, path, where)
        if phase == "preconditions" and "undo" in step:
            self.error(
                (*path, "undo"),
                f"{where}: a precondition must only read, so its undo would never run:"
                " move what it changes to steps:",
                key=True,
            )
        self.vars.update(_names(step.get("set")))
        done.update(own)

    def _check_timeouts(self, step: Mapping[str, Any], path: Path, where: str) -> None:
        """``timeout: 0`` would kill the command at once (it is not "no timeout")."""
        undo = step.get("undo")
        places: list[tuple[Path, Any]] = [((*path, "timeout"), step.get("timeout"))]
        if isinstance(undo, Mapping):
            places.append(((*path, "undo", "timeout"), undo.get("timeout")))
        for action in ("http", "approve"):  # their own timeout: 0 is no time either
            inner = step.get(action)
            if isinstance(inner, Mapping):
                places.append(((*path, action, "timeout"), inner.get("timeout")))
        fallback = (
            " for the default, 1h" if not path else " for the runbook's (default 1h)"
        )
        for place, value in places:
            if value is not None and _is_zero_duration(value):
                own = place[-2:-1] in (("http",), ("approve",))  # the action's own
                self.error(
                    place,
                    f"{where}: a timeout of {value!r} would stop it at once; give a"
                    f" longer one, or leave it out{'' if own else fallback}",
                )

    def _check_command_sizes(
        self, step: Mapping[str, Any], path: Path, where: str
    ) -> None:
        undo = step.get("undo")
        places: list[tuple[Path, Any]] = [
            ((*path, "run"), step.get("run")),
            ((*path, "undo"), undo),
        ]
        if isinstance(undo, Mapping):
            places.append(((*path, "undo", "run"), undo.get("run")))
            places += _argv_items((*path, "undo", "argv"), undo.get("argv"))
        places += _argv_items((*path, "argv"), step.get("argv"))
        for place, text in places:
            if isinstance(text, str) and not fits_in_one_argument(text):
                size = len(text.encode("utf-8", errors="surrogateescape"))
                self.error(
                    place,
                    f"{where}: {_field(place[2:])!r} is {size:,} bytes; one command"
                    f" must be under {MAX_COMMAND_BYTES:,} bytes (128 KiB, Linux's"
                    " limit for one argument): put the script in a file, copy it to"
                    " the host and run that",
                )

    def _check_template(
        self, template: _Template, where: str, steps_done: set[str]
    ) -> None:
        try:
            undeclared, refs = render.references(
                template.source, expression=template.expression
            )
            forbidden = render.forbidden(
                template.source, expression=template.expression
            )
        except render.TemplateSyntaxError as exc:
            self._syntax_error(template, where, exc)
            return
        for problem in forbidden:
            self.error(template.path, f"{where}: {problem}")
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
            if key in self.all_ids:
                return f"steps.{key} is used before step {key!r} runs"
            return f"unknown step steps.{key}{_hint(key, self.all_ids)}"
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


def _is_zero_duration(value: Any) -> bool:
    try:
        return parse_duration(value) == 0
    except (TypeError, ValueError):
        return False  # not a duration: the schema says so


def _argv_items(path: Path, argv: Any) -> list[tuple[Path, Any]]:
    return (
        [((*path, i), a) for i, a in enumerate(argv)] if isinstance(argv, list) else []
    )


def _field(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _templates_in(
    value: Any, path: Path, key: str | None = None
) -> Iterator[_Template]:
    """Every template string inside a step field (expressions for expression keys)."""
    if key in _EXPRESSION_KEYS:
        if isinstance(value, str):
            yield _Template(path, value, True)
        return
    if key == "assert":
        if isinstance(value, str):
            yield _Template(path, value, True)
        for i, expr in enumerate(value if isinstance(value, list) else []):
            if isinstance(expr, str):
                yield _Template((*path, i), expr, True)
        return
    if key == "retries":
        until = value.get("until") if isinstance(value, Mapping) else None
        if isinstance(until, str):
            yield _Template((*path, "until"), until, True)
        return
    if isinstance(value, str):
        if render.is_template(value):
            yield _Template(path, value, False)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(k, str):
                yield from _templates_in(v, (*path, k), k if key == "undo" else None)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _templates_in(v, (*path, i))


def _hint(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
