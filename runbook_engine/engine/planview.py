"""``runbook plan`` as text for a terminal or Markdown for a pull request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..markdown import code, plain

if TYPE_CHECKING:
    from .plan import PlannedStep


def format_plan(prepared: Any, planned: list[PlannedStep], fmt: str) -> str:
    runbook = prepared.runbook
    hosts = ", ".join(h.name for h in prepared.hosts)
    if fmt == "markdown":
        return _markdown(runbook, hosts, planned, prepared.masker.mask)
    lines = [f"plan for {runbook.name} ({runbook.path}) on {hosts}"]
    phase = None
    for item in planned:
        if item.phase != phase:
            phase = item.phase
            lines.append(f"\n{phase}:")
        where = ", ".join(item.hosts) + (
            " (control machine)" if item.step.local else ""
        )
        flags = []
        if item.step.run_once:
            flags.append("run_once")
        if item.ran:
            flags.append(f"safe: probed, {item.ran}")
        elif item.probe:
            flags.append("safe: not run (--probe runs it)")
        flag_text = f" [{', '.join(flags)}]" if flags else ""
        lines.append(f"  {item.step.id}{flag_text} on {where}")
        if item.when:
            lines.append(f"      {item.when}")
        for line in prepared.masker.mask(item.action).splitlines() or [""]:
            lines.append(f"      {line}")
        if item.undo:
            undo = prepared.masker.mask(item.undo).replace("\n", "\n            ")
            lines.append(f"      undo: {undo}")
    return "\n".join(lines)


def _markdown(runbook: Any, hosts: str, planned: list[PlannedStep], mask: Any) -> str:
    lines = [f"### Plan: `{runbook.name}` on {hosts}", ""]
    lines += ["| phase | step | where | action | undo |", "|---|---|---|---|---|"]
    for item in planned:
        where = ", ".join(item.hosts) + (" (control)" if item.step.local else "")
        when = f"{plain(item.when)}<br>" if item.when else ""
        undo = code(mask(item.undo)) if item.undo else ""
        lines.append(
            f"| {item.phase} | `{item.step.id}` | {plain(where)} |"
            f" {when}{code(mask(item.action))} | {undo} |"
        )
    return "\n".join(lines)
