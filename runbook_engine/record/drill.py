"""The drill report as text for the operator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..units import format_duration

if TYPE_CHECKING:
    from .events import DrillReport


def format_drill(report: DrillReport) -> str:
    verdict = "PASS" if report.passed else "FAIL"
    failure = report.failure or "-"
    if failure.startswith("drill:"):
        how = "injected"
    else:
        how = f"a real failure, before the injection point --fail-at {report.fail_at}"
    lines = [f"drill report: {verdict}", f"  failure ({how}): {failure}"]
    lines.append(
        f"  steps done before the failure: {', '.join(report.steps_done) or 'none'}"
    )
    lines.append("  undos:")
    for undo in report.undos or []:
        lines.append(
            f"    {undo.host} {undo.step}: {undo.status}"
            f" in {format_duration(undo.duration_ms / 1000)}"
        )
    if not report.undos:
        lines.append("    none")
    lines.append("  checks (before -> after):")
    for before, after in zip(report.checks_before, report.checks_after, strict=False):
        lines.append(
            f"    {before.host} {before.name}: {before.status} -> {after.status}"
        )
    if report.recovery_ms is not None:
        lines.append(
            "  recovery time (failure to end of rollback):"
            f" {format_duration(report.recovery_ms / 1000)}"
        )
    for difference in report.differences:
        lines.append(f"  DIFFERS: {difference}")
    return "\n".join(lines)
