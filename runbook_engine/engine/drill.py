"""A drill's verdict: did the state really come back?

Before the change, the preconditions ran and each said something: its status, and its
captured output (the JSON it printed or answered, else its text). After the injected
failure and the real rollback they run again, and each must say the same. Any
difference is a FAIL, shown as a diff, because a check that still "succeeds" while
saying something else (another version, another schema) is exactly what a drill must
catch. Text is compared after blanking what is expected to vary from run to run:
durations (``0.41s``, ``12ms``), timestamps and ``mktemp`` paths.

A drill also fails when the run did not end rolled back, or when the rollback left
something for a human. A drill that compared nothing (no preconditions) and undid
nothing proves nothing: ``trivial`` says so, and it FAILs unless ``allow_trivial``.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import TYPE_CHECKING

from ..record.events import DrillReport, RunStatus

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..record.results import Attention, CheckRow, StepResult, UndoDone
    from ..spec.model import Runbook
    from .hosts import HostState

_VOLATILE = (
    (
        re.compile(
            r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?"
        ),
        "<time>",
    ),
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|s)\b"), "<duration>"),
    # a mktemp (tmp.XXXXXXXXXX) or Python tempfile (tmpXXXXXXXX) path, in any
    # directory: $TMPDIR is not always /tmp
    (re.compile(r"[^\s'\"=:]*/tmp\.?[A-Za-z0-9_]{6,}"), "<tmp>"),
)
_DIFF_LINES = 12


def compare_checks(
    before: Sequence[StepResult], after: Sequence[StepResult]
) -> list[str]:
    """One difference per check (by host and step) whose status or output changed,
    or that ran only once."""
    seen_after = {(r.host, r.step_id): r for r in after}
    differences = []
    for old in before:
        new = seen_after.pop((old.host, old.step_id), None)
        where = f"{old.host} {old.step_id}"
        if new is None:
            differences.append(f"{where}: ran before the change, not after")
            continue
        if old.status.succeeded != new.status.succeeded:
            differences.append(
                f"{where}: {old.status.value} before, {new.status.value} after"
            )
            continue
        diff = _diff(said(old), said(new))
        if diff:
            differences.append(
                f"{where}: says something else after the rollback\n{diff}"
            )
    for host, step in seen_after:
        differences.append(f"{host} {step}: ran after the rollback, not before")
    return differences


def said(result: StepResult) -> list[str]:
    """What a check said, as comparable lines: its JSON (sorted keys) when it gave
    one, else its output with volatile parts blanked; and its message."""
    if result.json is not None:
        lines = json.dumps(result.json, indent=1, sort_keys=True).splitlines()
    else:
        text = "\n".join(part for part in (result.stdout, result.stderr) if part)
        for pattern, replacement in _VOLATILE:
            text = pattern.sub(replacement, text)
        lines = text.strip().splitlines()
    if result.http_status is not None:
        lines.insert(0, f"HTTP {result.http_status}")
    return lines


def _diff(before: list[str], after: list[str]) -> str:
    if before == after:
        return ""
    lines = list(
        difflib.unified_diff(before, after, "before", "after", lineterm="", n=1)
    )
    if len(lines) > _DIFF_LINES:
        lines = [*lines[:_DIFF_LINES], f"... ({len(lines) - _DIFF_LINES} more lines)"]
    return "\n".join(f"    {line}" for line in lines)


def drill_report(
    runbook: Runbook,
    hosts: Sequence[HostState],
    *,
    fail_at: str,
    status: RunStatus,
    failure: str | None,
    rows: tuple[Sequence[CheckRow], Sequence[CheckRow]],
    results: tuple[Sequence[StepResult], Sequence[StepResult]],
    undos: Sequence[UndoDone],
    attention: Sequence[Attention],
    recovery_ms: int | None,
    allow_trivial: bool = False,
) -> DrillReport:
    """PASS when the run rolled back cleanly, every check says what it said before
    the change, and the drill compared or undid something (or ``allow_trivial``)."""
    differences = compare_checks(*results)
    trivial = not rows[0] and not undos
    if status is not RunStatus.ROLLED_BACK:
        differences.insert(0, f"the run ended {status.value}, not rolled_back")
    differences += [f"{a.host} {a.step}: {a.what}" for a in attention]
    done = {
        step
        for host in hosts
        for step, result in host.results.items()
        if result.phase in ("steps", "verify") and result.ok
    }
    return DrillReport(
        passed=not differences and (allow_trivial or not trivial),
        fail_at=fail_at,
        failure=failure,
        steps_done=[s.id for s in runbook.all_steps() if s.id in done],
        undos=list(undos),
        checks_before=list(rows[0]),
        checks_after=list(rows[1]),
        differences=differences,
        recovery_ms=recovery_ms,
        trivial=trivial,
    )
