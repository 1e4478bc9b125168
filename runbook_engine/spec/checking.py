"""``runbook validate``: find the files, tell runbooks from inventories, collect every
diagnostic (and, with ``--strict``, the lint warnings)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from .diagnostics import Diagnostic

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


def kind_of(path: Path) -> str | None:
    """ "runbook", "inventory" or None (some other YAML file, e.g. a CI workflow), from
    the top-level keys. A file too broken to parse is judged by its key lines."""
    from .loader import load_yaml

    try:
        data = load_yaml(path).data
    except InputError:
        text = path.read_text(encoding="utf-8", errors="replace")
        data = {
            m.group(1): None for m in re.finditer(r"(?m)^([A-Za-z_][\w-]*)\s*:", text)
        }
    if not isinstance(data, dict):
        return None
    if "steps" in data or ("version" in data and "name" in data):
        return "runbook"
    if isinstance(data.get("hosts"), dict) or "groups" in data or "defaults" in data:
        return "inventory"
    return None


def check_files(
    files: list[Path], *, strict: bool = False, inventory: Path | None = None
) -> tuple[list[Diagnostic], int]:
    """(diagnostics of every file, number of files checked)."""
    from .build import check_runbook
    from .inventory import check_inventory

    diagnostics: list[Diagnostic] = []
    counted = 0
    for path in files:
        kind = kind_of(path)
        if kind is None:
            continue
        counted += 1
        if kind == "inventory":
            diagnostics.extend(check_inventory(path))
            continue
        problems = check_runbook(path)
        diagnostics.extend(problems)
        if strict and not any(d.severity == "error" for d in problems):
            from .lint import lint_runbook

            diagnostics.extend(lint_runbook(path, inventory=inventory))
    return diagnostics, counted
