"""The packaged JSON schemas, and checking a document against one.

This is the only module that imports ``jsonschema``. It owns reading
``runbook_engine/schemas/<name>.schema.json`` and :func:`validate_document`: every
violation as a :class:`Diagnostic` at the offending key or value, worded by
``spec/schema_errors.py``, plus the YAML 1.1 readings the schema cannot see (a
date anywhere; an unquoted ``no`` / ``0644`` / ``3.10`` in free-form data).

Speed: jsonschema needs ~20 ms for a 50-step runbook, too slow for
``runbook validate`` over a repository. So the schema is also compiled into a
plain-Python yes/no check (``spec/quickcheck.py``); jsonschema runs only when that
check says no, to explain why. A test keeps the two in agreement.

It knows nothing about YAML (positions come from ``spec/loader.py``) and checks
nothing beyond the schema (unique ids, references: ``spec/validate.py``).
"""

from __future__ import annotations

import datetime
import functools
import json
import re
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..diagnostics import Diagnostic
from .explain import explain_plain_scalar, is_lossy
from .quickcheck import Check, compile_schema
from .schema_errors import STEP_LISTS, Explainer, get

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .loader import Document, NodePath

__all__ = ["load_schema", "validate_document"]


def load_schema(name: str) -> dict[str, Any]:
    """The packaged schema ``runbook_engine/schemas/<name>.schema.json`` (a fresh
    copy each call: callers may change it)."""
    return json.loads(_schema_text(name))  # type: ignore[no-any-return]


def validate_document(doc: Document, schema_name: str) -> list[Diagnostic]:
    """Every schema violation in ``doc``, sorted by position; [] when valid."""
    explainer = Explainer(doc, schema_name)
    found: dict[tuple[int, int, str], Diagnostic] = {}
    quick = _quick_check(schema_name)
    if quick is None or not quick(doc.data):
        for error in _validator(schema_name).iter_errors(doc.data):
            for diagnostic in explainer.explain(error):
                key = (diagnostic.line, diagnostic.col, diagnostic.message)
                found.setdefault(key, diagnostic)
    for diagnostic in _yaml11_readings(explainer, schema_name, found):
        found.setdefault(
            (diagnostic.line, diagnostic.col, diagnostic.message), diagnostic
        )
    return [found[key] for key in sorted(found)]


@functools.cache
def _schema_text(name: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        raise ValueError(f"not a schema name: {name!r}")
    path = resources.files("runbook_engine") / "schemas" / f"{name}.schema.json"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"no packaged schema {name!r}") from None


@functools.cache
def _validator(name: str) -> Any:
    # compiled once per process: building it costs far more than using it;
    # imported here because valid documents never need it (~60 ms of start-up)
    from jsonschema import Draft202012Validator, FormatChecker

    return Draft202012Validator(
        load_schema(name), format_checker=FormatChecker(formats=("regex",))
    )


# --------------------------------------------------------------------------- #
# YAML 1.1 readings the schema cannot see


def _yaml11_readings(
    explainer: Explainer,
    schema_name: str,
    reported: dict[tuple[int, int, str], Diagnostic],
) -> Iterator[Diagnostic]:
    """YAML 1.1 readings the schema cannot see, because the place accepts any
    value: dates and timestamps anywhere (JSON has none), and, in free-form
    data (vars, set, with, http json), an unquoted scalar that does not read
    back as written (``no``, ``0644``, ``3.10``). Refuse and say to quote."""
    taken = {(line, col) for line, col, _ in reported}
    for path, source in explainer.positions.sources.items():
        value = get(explainer.doc.data, path)
        if isinstance(value, datetime.date):
            problem = _date_problem(source, value)
        elif is_lossy(source, value) and _is_free_form(schema_name, path):
            explained = explain_plain_scalar(source, value, typed=True)
            problem = f"is ambiguous: {explained}"
        else:
            continue
        where = explainer.positions.value(path)
        if (where.line, where.col) not in taken:
            yield Diagnostic.at(where, f"{explainer.subject(path)}{problem}")


def _is_free_form(schema_name: str, path: NodePath) -> bool:
    """Is ``path`` inside data the schema takes as it comes (any type)?"""
    if schema_name == "inventory":
        return path[:1] == ("vars",) or (
            path[:1] == ("hosts",) and path[2:3] == ("vars",)
        )
    if path[:1] == ("vars",):
        return True
    if len(path) < 4 or path[0] not in STEP_LISTS:
        return False
    inner = path[3:] if path[2] == "undo" else path[2:]
    return inner[0] in ("set", "with") or (
        inner[0] == "http" and len(inner) > 2 and inner[1] in ("json", "expect_json")
    )


def _date_problem(source: str, value: object) -> str:
    return f"is not text: {explain_plain_scalar(source, value)}"


@functools.cache
def _quick_check(name: str) -> Check | None:
    return compile_schema(load_schema(name))
