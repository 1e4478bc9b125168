"""Read YAML safely and keep line:col for every key and value.

Turns a file into a :class:`Document`: plain Python data (dicts with string keys,
lists, str, int, float, bool, None, dates) plus a :class:`PositionMap` that answers
"where is this key / value?" for any path such as ``("steps", 3, "retries")``.

Two ways in:

- :func:`read_yaml` keeps going past problems that concern one value (a duplicate
  key, a key YAML did not read as a string, a merge key, an unsupported tag): the
  value is dropped and the problem is in :attr:`Document.problems`, so the schema
  and the semantic checks still see the rest of the file and every mistake is
  reported in one pass. It raises only when the file cannot be used at all.
- :func:`load_yaml` raises on any problem (for params files and callers that want
  all or nothing).

Both refuse, with one :class:`~runbook_engine.errors.InputError` listing every
problem found: an unreadable file, syntax errors, aliases expanding beyond a bound
(billion laughs), nesting deeper than :data:`MAX_DEPTH`, more than one document, an
empty file and a top level that is not a mapping.

Reading the YAML itself is ``spec/reader.py`` (the module that imports ``yaml``);
the words for what YAML 1.1 made of a value are ``spec/explain.py``. This module
knows nothing about the runbook format: that is ``spec/schema.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..diagnostics import Diagnostic, Position
from ..errors import InputError
from .explain import describe_value, explain_plain_scalar, reading
from .reader import MAX_ALIAS_NODES, MAX_DEPTH, MAX_NODES, Mark, NodePath, build

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
    "MAX_NODES",
    "Document",
    "NodePath",
    "PositionMap",
    "describe_value",
    "explain_plain_scalar",
    "load_mapping_file",
    "load_yaml",
    "read_yaml",
]


@dataclass(frozen=True, slots=True, eq=False)
class PositionMap:
    """Where each key and value of a document starts, by path.

    Lookups fall back to the nearest ancestor that exists, so a path into a
    value that is missing still points somewhere useful.
    """

    file: str
    keys: dict[NodePath, Mark] = field(repr=False)
    values: dict[NodePath, Mark] = field(repr=False)
    sources: dict[NodePath, str] = field(repr=False)

    def key(self, path: NodePath) -> Position:
        """Position of the key named by ``path[-1]`` (the item itself for a list
        index), else of the nearest ancestor."""
        while True:
            mark = self.keys.get(path) or self.values.get(path)
            if mark is not None or not path:
                return self._position(mark)
            path = path[:-1]

    def value(self, path: NodePath) -> Position:
        """Position of the value at ``path``, else of the nearest ancestor."""
        while True:
            mark = self.values.get(path)
            if mark is not None or not path:
                return self._position(mark)
            path = path[:-1]

    def _position(self, mark: Mark | None) -> Position:
        if mark is None:
            return Position(self.file, 1, 1)
        return Position(self.file, mark.line + 1, mark.column + 1)

    def source_text(self, path: NodePath) -> str | None:
        """The text of an unquoted scalar that YAML read as something other than
        a string (``0755`` -> 493, ``no`` -> False, ``3.10`` -> 3.1, dates, null);
        None for every other value."""
        return self.sources.get(path)


@dataclass(frozen=True, slots=True)
class Document:
    """A loaded YAML file: its data, where everything is, its text, and the
    problems :func:`read_yaml` went past (always empty from :func:`load_yaml`)."""

    path: str
    data: Any
    positions: PositionMap
    text: str
    problems: tuple[Diagnostic, ...] = ()


def read_yaml(
    path: str | Path, text: str | None = None, *, shape: str = ""
) -> Document:
    """Load one YAML document whose top level is a mapping, going past problems
    that concern one value (see the module docstring).

    ``text``, when given, is used instead of reading ``path`` (which then only
    names the file in diagnostics). ``shape`` says what the file should hold, for
    the message about an empty file or a top level that is not a mapping ("a
    runbook needs version, name and steps"). Raises InputError listing every
    problem when the file cannot be used at all.
    """
    name = str(path)
    return _load(name, _read_text(name) if text is None else text, False, shape)


def load_yaml(path: str | Path, text: str | None = None) -> Document:
    """Like :func:`read_yaml`, but any problem raises InputError."""
    return _strict(read_yaml(path, text))


def load_mapping_file(path: str | Path) -> Document:
    """Load a ``--params-file``: a YAML or JSON mapping, with the same safety
    rules as runbooks. In ``.json`` files ``1e3`` is a number, as JSON says."""
    name = str(path)
    json = name.lower().endswith(".json")
    return _strict(_load(name, _read_text(name), json, ""))


def _strict(doc: Document) -> Document:
    if doc.problems:
        _raise(doc.path, list(doc.problems))
    return doc


def _raise(name: str, diagnostics: list[Diagnostic]) -> None:
    count = len(diagnostics)
    noun = "problem" if count == 1 else "problems"
    raise InputError(f"{name}: {count} YAML {noun}", diagnostics)


def _read_text(name: str) -> str:
    try:
        data = Path(name).read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InputError(
            f"{name}: cannot read: {reason}",
            [Diagnostic(name, 1, 1, f"cannot read file: {reason}")],
        ) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        message = f"not valid UTF-8 (byte {exc.start}); save the file as UTF-8"
        raise InputError(
            f"{name}: {message}", [Diagnostic(name, line, 1, message)]
        ) from exc


def _load(name: str, text: str, json: bool, shape: str) -> Document:
    built = build(name, text, json=json)
    problems = list(built.problems)
    if built.fatal:
        _raise(name, problems)
    if not isinstance(built.data, dict):
        problems.append(
            _top_level_problem(name, built.data, built.values.get(()), shape)
        )
        _raise(name, problems)
    positions = PositionMap(name, built.keys, built.values, built.sources)
    return Document(name, built.data, positions, text, tuple(problems))


def _top_level_problem(
    name: str, data: object, where: Mark | None, shape: str
) -> Diagnostic:
    line, col = (where.line + 1, where.column + 1) if where else (1, 1)
    hint = f": {shape}" if shape else ""
    if data is None:
        message = "the file is empty (nothing but comments and blank lines)"
        return Diagnostic(name, 1, 1, message + hint)
    if isinstance(data, list):
        found = "a list"
    elif isinstance(data, str):
        found = "a string"
    else:
        found = reading(data)
    message = f"the top level must be a mapping (key: value), found {found}{hint}"
    return Diagnostic(name, line, col, message)
