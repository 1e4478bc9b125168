"""Params: ``-e key=value`` strings and ``--params-file`` values checked against their
declarations and coerced to the declared type, before anything runs."""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING, Any

from ..diagnostics import Diagnostic
from ..errors import ParamError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..diagnostics import Position
    from .model import ParamDecl

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_assignments(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` -> ``{"a": "1", "b": "x=y"}``."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ParamError(f"-e {pair!r}: expected key=value")
        values[name.strip()] = value
    return values


def resolve_params(
    decls: Mapping[str, ParamDecl],
    given: Mapping[str, Any],
    *,
    from_cli: frozenset[str] = frozenset(),
    what: str = "param",
    positions: Mapping[str, Position] | None = None,
) -> dict[str, Any]:
    """Declared params with defaults applied. ``from_cli`` names the values that are
    strings typed by a person (coerced); other values must already have the type.
    ``positions`` places the problems of values read from a file (``path:line:col``)."""
    problems: list[str] = []
    diagnostics: list[Diagnostic] = []
    where = positions or {}
    values: dict[str, Any] = {}
    for name in given:
        if name not in decls:
            close = difflib.get_close_matches(name, list(decls), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(sorted(decls)) or "none"
            message = f"unknown {what} {name!r}{hint}; declared: {known}"
            _report(message, where.get(name), problems, diagnostics)
    for name, decl in decls.items():
        if name in given:
            try:
                values[name] = _check(decl, given[name], name in from_cli)
            except ValueError as exc:
                _report(
                    f"{what} {name!r}: {exc}", where.get(name), problems, diagnostics
                )
        elif decl.has_default:
            values[name] = decl.default
        elif decl.required:
            problems.append(
                f"missing required {what} {name!r} (give it with -e {name}=...)"
            )
        else:
            values[name] = None
    if problems or diagnostics:
        text = "; ".join(problems) if len(problems) == 1 else "\n".join(problems)
        raise ParamError(text or "invalid params", diagnostics)
    return values


def _report(
    message: str,
    position: Position | None,
    problems: list[str],
    diagnostics: list[Diagnostic],
) -> None:
    if position is None:
        problems.append(message)
    else:
        diagnostics.append(Diagnostic.at(position, message))


def _check(decl: ParamDecl, value: Any, typed_by_person: bool) -> Any:
    if typed_by_person and isinstance(value, str):
        value = _coerce(decl.type, value)
    elif not _has_type(decl.type, value):
        raise ValueError(f"must be of type {decl.type}, got {value!r}")
    if decl.enum is not None and value not in decl.enum:
        allowed = ", ".join(repr(v) for v in decl.enum)
        raise ValueError(f"must be one of {allowed}, got {value!r}")
    if decl.pattern is not None and not re.search(decl.pattern, str(value)):
        raise ValueError(f"{value!r} does not match the pattern {decl.pattern}")
    return value


def _coerce(kind: str, text: str) -> Any:
    try:
        if kind == "integer":
            return int(text.strip())
        if kind == "number":
            return float(text.strip())
    except ValueError:
        raise ValueError(
            f"must be {'an' if kind == 'integer' else 'a'} {kind}, got {text!r}"
        ) from None
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"must be a boolean (true/false), got {text!r}")
    return text


def _has_type(kind: str, value: Any) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)
