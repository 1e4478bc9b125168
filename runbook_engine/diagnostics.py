"""Diagnostics: ``path:line:col: message`` and their text / json / github renderings.

Owns the shape of a diagnostic and how it is printed; not what is diagnosed."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Position:
    """1-based line and column in a file."""

    path: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    path: str
    line: int
    col: int
    message: str
    severity: Severity = "error"
    code: str | None = None

    @classmethod
    def at(
        cls,
        pos: Position,
        message: str,
        severity: Severity = "error",
        code: str | None = None,
    ) -> Diagnostic:
        return cls(pos.path, pos.line, pos.col, message, severity, code)

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else f"{self.severity}: "
        code = f" [{self.code}]" if self.code else ""
        return f"{self.path}:{self.line}:{self.col}: {prefix}{self.message}{code}"


def format_text(diagnostics: list[Diagnostic]) -> str:
    return "\n".join(str(d) for d in diagnostics)


def format_json(diagnostics: list[Diagnostic]) -> str:
    rows = []
    for d in diagnostics:
        row = asdict(d)
        row["file"] = row.pop("path")
        row["column"] = row.pop("col")
        rows.append(row)
    return json.dumps(rows, indent=2)


def _escape_github(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def format_github(diagnostics: list[Diagnostic]) -> str:
    """GitHub Actions workflow commands; a lint warning keeps its rule id in the
    annotation's title and text (``title=RB003`` ... ``[RB003]``)."""
    lines = []
    for d in diagnostics:
        kind = "error" if d.severity == "error" else "warning"
        file = _escape_property(d.path)
        title = f",title={_escape_property(d.code)}" if d.code else ""
        text = f"{d.message} [{d.code}]" if d.code else d.message
        lines.append(
            f"::{kind} file={file},line={d.line},col={d.col}{title}::"
            f"{_escape_github(text)}"
        )
    return "\n".join(lines)


def _escape_property(text: str) -> str:
    return _escape_github(text).replace(",", "%2C").replace(":", "%3A")
