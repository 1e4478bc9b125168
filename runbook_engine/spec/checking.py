"""``runbook validate``: find the files, tell runbooks from inventories, collect every
diagnostic (and, with ``--strict``, the lint warnings)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from ..diagnostics import Diagnostic
    from .loader import Document

_SUFFIXES = (".yaml", ".yml")


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(
                    p for p in path.rglob("*") if p.suffix in _SUFFIXES and p.is_file()
                )
            )
        else:
            files.append(path)
    return files


def kind_of(path: Path) -> tuple[str | None, Document | None]:
    """("runbook" | "inventory" | None (some other YAML file, e.g. a CI workflow), the
    loaded document) from the top-level keys. A file too broken to parse is judged by
    its key lines (and has no document)."""
    from .loader import load_yaml

    doc: Document | None = None
    try:
        doc = load_yaml(path)
        data = doc.data
    except InputError:
        text = path.read_text(encoding="utf-8", errors="replace")
        data = {
            m.group(1): None for m in re.finditer(r"(?m)^([A-Za-z_][\w-]*)\s*:", text)
        }
    if not isinstance(data, dict):
        return None, doc
    if "steps" in data or ("version" in data and "name" in data):
        return "runbook", doc
    if isinstance(data.get("hosts"), dict) or "groups" in data or "defaults" in data:
        return "inventory", doc
    return None, doc


def check_files(
    files: list[Path], *, strict: bool = False, inventory: Path | None = None
) -> tuple[list[Diagnostic], int]:
    """(diagnostics of every file, number of files checked). Each file is read once."""
    from .build import check_runbook
    from .inventory import check_inventory

    diagnostics: list[Diagnostic] = []
    counted = 0
    for path in files:
        kind, doc = kind_of(path)
        if kind is None:
            continue
        counted += 1
        if kind == "inventory":
            diagnostics.extend(check_inventory(path))
            continue
        problems = check_runbook(path, doc)
        diagnostics.extend(problems)
        if strict and not any(d.severity == "error" for d in problems):
            from .lint import lint_runbook

            diagnostics.extend(lint_runbook(path, inventory=inventory))
    return diagnostics, counted
