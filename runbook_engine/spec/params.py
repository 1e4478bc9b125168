"""Params: ``-e key=value`` strings and ``--params-file`` values checked against their
declarations and coerced to the declared type, before anything runs."""

from __future__ import annotations

import difflib
import functools
import math
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
    value_positions: Mapping[str, Position] | None = None,
    written: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Declared params with defaults applied. ``from_cli`` names the values that are
    strings typed by a person (coerced); other values must already have the type.
    ``positions`` (of the names) and ``value_positions`` place the problems of values
    read from a file (``path:line:col``), reported in the file's order; ``written``
    holds how a file wrote the values YAML did not read as text (``010``)."""
    problems: list[str] = []
    diagnostics: list[Diagnostic] = []
    where = positions or {}
    value_where = value_positions or where
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
                _check_written(decl, (written or {}).get(name), given[name])
                values[name] = _check(decl, given[name], name in from_cli)
            except ValueError as exc:
                place = value_where.get(name)
                _report(f"{what} {name!r}: {exc}", place, problems, diagnostics)
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
        diagnostics.sort(key=lambda d: (d.line, d.col))
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


def check_default(decl: ParamDecl) -> str | None:
    """What is wrong with a param's own default (its type, enum, pattern), or None."""
    if not decl.has_default or decl.default is None:
        return None
    try:
        _check(decl, decl.default, typed_by_person=False)
    except ValueError as exc:
        return f"param {decl.name!r}: its default {exc}"
    return None


def _check(decl: ParamDecl, value: Any, typed_by_person: bool) -> Any:
    if typed_by_person and isinstance(value, str):
        value = _coerce(decl.type, value)
    elif not _has_type(decl.type, value):
        if decl.type == "string" and isinstance(value, bool | int | float):
            kind = "the boolean" if isinstance(value, bool) else "the number"
            raise ValueError(
                f"must be text, but YAML reads what is written there as {kind}"
                f" {value!r}: put it in quotes"
            )
        plain = _PLAIN.get(decl.type)
        if isinstance(value, str) and plain and plain.fullmatch(value.strip()):
            number = int(value) if decl.type == "integer" else float(value)
            raise ValueError(  # YAML 1.1 reads 2.5e3 (no exponent sign) as text
                f"must be of type {decl.type}, got the text {value!r}: write it"
                f" unquoted as {number!r}"
            )
        raise ValueError(f"must be of type {decl.type}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    if _is_int(value) and not _INT_MIN <= value <= _INT_MAX:
        raise ValueError(f"{value} is out of range (at most 64-bit: ±{_INT_MAX:,})")
    if decl.enum is not None and value not in decl.enum:
        allowed = ", ".join(repr(v) for v in decl.enum)
        raise ValueError(f"must be one of {allowed}, got {value!r}")
    if decl.pattern is not None and not _pattern(decl.pattern).search(str(value)):
        raise ValueError(f"{value!r} does not match the pattern {decl.pattern}")
    return value


_INT_MAX = 2**63 - 1
_INT_MIN = -(2**63)
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


_PLAIN = {
    "integer": re.compile(r"[+-]?(?:0|[1-9][0-9]*)"),
    "number": re.compile(r"[+-]?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"),
}


def _check_written(decl: ParamDecl, text: str | None, value: Any) -> None:
    """A number in a params file must be written as one: YAML 1.1 reads ``010``
    as 8, ``0x10`` as 16 and ``1_000`` as 1000."""
    plain = _PLAIN.get(decl.type)
    if text is None or plain is None or plain.fullmatch(text.strip()):
        return
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(
            f"{text} is not written as a plain {decl.type}: YAML reads it as"
            f" {value!r}; write {value!r} if that is what you mean"
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@functools.lru_cache(maxsize=256)
def _pattern(pattern: str) -> re.Pattern[str]:
    """A JSON Schema ``pattern`` with its ECMA-262 meaning: ``$`` is the end of the
    text (Python's also matches before a final newline, so ``^\\d+$`` took
    ``"1\\n"``), and ``\\d``, ``\\w``, ``\\s`` are ASCII."""
    out, escaped, in_class = [], False, False
    for char in pattern:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            out.append(char)
            escaped = True
        elif char == "[":
            in_class = True
            out.append(char)
        elif char == "]":
            in_class = False
            out.append(char)
        elif char == "$" and not in_class:
            out.append(r"\Z")
        else:
            out.append(char)
    return re.compile("".join(out), re.ASCII)


def _coerce(kind: str, text: str) -> Any:
    try:
        # digits as written: no "1_000", no other scripts' digits, no "inf"
        if kind == "integer" and _INTEGER.fullmatch(text.strip()):
            return int(text.strip())
        if kind == "number" and _NUMBER.fullmatch(text.strip()):
            return float(text.strip())
        if kind in ("integer", "number"):
            raise ValueError(text)
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
