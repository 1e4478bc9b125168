"""``runbook validate``: find the files, tell runbooks from inventories, collect every
diagnostic (and, with ``--strict``, the lint warnings).

Which files are checked, and as what:

1. A file **named on the command line** is checked, unless its
   ``# yaml-language-server: $schema=`` line names another tool's schema (it says
   whose it is: a GitHub workflow, a pre-commit config). It is an inventory when
   its ``# yaml-language-server: $schema=`` line names the inventory schema, or when
   its keys are an inventory's (``hosts:`` holding a mapping, ``groups:``,
   ``defaults:``) and not a runbook's; otherwise it is a runbook. So an emptied
   runbook, a YAML list or a mapping without ``version`` / ``steps`` is an error
   (``file:1:1``), never a silent pass (pre-commit names the files it checks).
2. A file **found by searching a directory** (``*.yaml`` / ``*.yml``) is checked
   when its schema line names our runbook or inventory schema, when its keys are a
   runbook's (``steps:``, or ``version:`` with ``name:``) or an inventory's, or when
   it is empty (nothing but comments and blank lines: a runbook whose content was
   deleted, and never useful in a runbook directory).
3. Any other YAML found by a directory search is not ours and is skipped: a CI
   workflow (``examples/ci/github-actions.yml``), a compose file, an Ansible
   playbook (a top-level list), a file too broken to parse whose lines show none
   of our keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..errors import InputError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from ..diagnostics import Diagnostic
    from .loader import Document

Kind = Literal["runbook", "inventory"]

_SUFFIXES = (".yaml", ".yml")
_MODELINE = re.compile(
    r"(?m)^#\s*yaml-language-server:\s*\$schema=\S*?\b(runbook|inventory)\.schema\.json"
)
# a schema line naming someone else's schema (a workflow, pre-commit, Prometheus...)
_OTHER_SCHEMA = re.compile(r"(?m)^#\s*yaml-language-server:\s*\$schema=\S+")
_KEY_LINE = re.compile(r"(?m)^([A-Za-z_][\w-]*)\s*:")
_BLANK = re.compile(r"(?:\s|#[^\n]*)*")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A file to consider; ``named``: given on the command line (always checked)."""

    path: Path
    named: bool


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files named, and the ``*.yaml`` / ``*.yml`` files under directories named."""
    return [candidate.path for candidate in candidates(paths)]


def candidates(paths: Iterable[Path]) -> list[Candidate]:
    found: list[Candidate] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                Candidate(p, named=False)
                for p in sorted(path.rglob("*"))
                if p.suffix in _SUFFIXES and p.is_file()
            )
        else:
            found.append(Candidate(path, named=True))
    return found


def kind_of(path: Path, *, named: bool = False) -> tuple[Kind | None, Document | None]:
    """(what to check ``path`` as, or None to skip it; the document when it could be
    read), by the rules in the module docstring."""
    from .loader import read_yaml

    try:
        text: str | None = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        text = None  # read_yaml says what is wrong with it
    declared = _MODELINE.search(text or "")
    doc: Document | None = None
    try:
        doc = read_yaml(path, text)
        data: object = doc.data
    except InputError:
        data = None if _BLANK.fullmatch(text or "") else _key_lines(text or "")
    if declared:
        return ("inventory" if declared.group(1) == "inventory" else "runbook"), doc
    if _OTHER_SCHEMA.search(text or ""):
        return None, doc  # it says whose it is: not ours, even when named
    looks = _looks_like(data)
    if looks is not None or named:
        return looks or "runbook", doc
    return ("runbook" if data is None else None), doc


def _key_lines(text: str) -> dict[str, None] | list[None]:
    """The top-level keys of a file too broken to parse (a list when it looks like
    a YAML list: not ours)."""
    keys = {m.group(1): None for m in _KEY_LINE.finditer(text)}
    if not keys and re.search(r"(?m)^-\s", text):
        return []
    return keys


def _looks_like(data: object) -> Kind | None:
    if not isinstance(data, dict):
        return None
    if "steps" in data or ("version" in data and "name" in data):
        return "runbook"
    # an inventory's groups are a mapping; Prometheus rules' `groups:` is a list
    # (None: a file too broken to read, judged by its key lines)
    if any(
        key in data and (data[key] is None or isinstance(data[key], dict))
        for key in ("hosts", "groups", "defaults")
    ):
        return "inventory"
    return None


def check_paths(
    paths: Iterable[Path], *, strict: bool = False, inventory: Path | None = None
) -> tuple[list[Diagnostic], int]:
    """(diagnostics of every file to check under ``paths``, number of files
    checked). Each file is read once. The ``-i`` inventory, which the lint rules
    read, is checked too: a broken or missing one must not pass."""
    from .build import check_runbook
    from .inventory import check_inventory

    diagnostics: list[Diagnostic] = []
    counted = 0
    listed = [c.path.resolve() for c in candidates(paths)]
    if inventory is not None and inventory.resolve() not in listed:
        counted += 1
        diagnostics.extend(check_inventory(inventory))
    for candidate in candidates(paths):
        kind, doc = kind_of(candidate.path, named=candidate.named)
        if kind is None:
            continue
        counted += 1
        if kind == "inventory":
            diagnostics.extend(check_inventory(candidate.path))
            continue
        problems = check_runbook(candidate.path, doc)
        diagnostics.extend(problems)
        if strict and not any(d.severity == "error" for d in problems):
            from .lint import lint_runbook

            diagnostics.extend(lint_runbook(candidate.path, inventory=inventory))
    return diagnostics, counted
