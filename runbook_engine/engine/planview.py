"""``runbook plan`` as text for a terminal or Markdown for a pull request."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

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


# characters Markdown would read as emphasis, code, links or escapes even between
# <code> tags (raw HTML does not stop inline parsing): written as entities
_MARKUP = str.maketrans({c: f"&#{ord(c)};" for c in "\\`*_[]~!|"})


def _cell(text: str) -> str:
    """Text for a Markdown table cell: shown as written, on one table row."""
    return html.escape(text).translate(_MARKUP).replace("\n", "<br>")


def _code(text: str) -> str:
    # <code>, not backticks: a code span would show the <br> of a multi-line command
    return f"<code>{_cell(text)}</code>" if text else ""


def _markdown(runbook: Any, hosts: str, planned: list[PlannedStep], mask: Any) -> str:
    lines = [f"### Plan: `{runbook.name}` on {hosts}", ""]
    lines += ["| phase | step | where | action | undo |", "|---|---|---|---|---|"]
    for item in planned:
        where = ", ".join(item.hosts) + (" (control)" if item.step.local else "")
        when = f"{_cell(item.when)}<br>" if item.when else ""
        undo = _code(mask(item.undo)) if item.undo else ""
        lines.append(
            f"| {item.phase} | `{item.step.id}` | {_cell(where)} |"
            f" {when}{_code(mask(item.action))} | {undo} |"
        )
    return "\n".join(lines)
