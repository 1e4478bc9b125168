"""Data-driven cases: every file in tests/cases/invalid/ starts with one or more
``# expect: LINE:COL: message`` lines, and checking it the way ``runbook validate``
does (loader, schema, semantic checks, includes) must give exactly those
diagnostics, in that order. Files in tests/cases/valid/ give none."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from runbook_engine.spec.build import check_runbook

if TYPE_CHECKING:
    from runbook_engine.diagnostics import Diagnostic

CASES = Path(__file__).resolve().parent.parent / "cases"
INVALID = sorted((CASES / "invalid").glob("*.yaml"))
VALID = sorted((CASES / "valid").glob("*.yaml"))
MODELINE = "# yaml-language-server: $schema=../../../schemas/runbook.schema.json"


def diagnose(path: Path) -> list[Diagnostic]:
    return check_runbook(path)


def expectations(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [
        line.removeprefix("# expect: ")
        for line in lines
        if line.startswith("# expect: ")
    ]


def test_there_are_enough_cases() -> None:
    assert len(INVALID) >= 15
    assert len(VALID) >= 3


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_case_gives_exactly_the_expected_diagnostics(path: Path) -> None:
    expected = expectations(path)
    assert expected, f"{path.name} has no '# expect:' line"
    found = [f"{d.line}:{d.col}: {d.message}" for d in diagnose(path)]
    assert found == expected


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_case_diagnostics_name_the_file_and_are_errors(path: Path) -> None:
    for diagnostic in diagnose(path):
        assert diagnostic.path == str(path)
        assert diagnostic.severity == "error"
        assert "is not valid under any of the given schemas" not in diagnostic.message


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_case_has_no_diagnostics(path: Path) -> None:
    assert diagnose(path) == []


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_case_starts_with_the_schema_modeline(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == MODELINE
    target = (path.parent / first.split("$schema=", 1)[1]).resolve()
    assert target.is_file()
