"""The ``markdown`` report: a run summary for ``$GITHUB_STEP_SUMMARY`` or a change
ticket. Status first, then hosts, steps, go/no-go, approvals, rollback, and what
needs a human, with the output tail of each failed step folded away.

Text from the run (output, messages, commands) is untrusted: it is written with
``markdown.plain`` (shown as written: no emphasis, link, HTML or table cell comes out
of it), and output goes in fences longer than any run of backticks it contains.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..markdown import code, plain
from ..units import format_duration

if TYPE_CHECKING:
    from .events import DrillReport, GoNoGo
    from .report_model import HostReport, Report, Rollback, StepRun

_ICON = {
    "succeeded": "✅",
    "failed": "❌",
    "rolled_back": "↩️",
    "rollback_failed": "🚨",
    "no_go": "⛔",
    "interrupted": "⏹️",
}


def _ms(ms: int | None) -> str:
    return "-" if ms is None else format_duration(ms / 1000)


def _fence(text: str) -> list[str]:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + "text", text.rstrip("\n"), fence]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _headline(report: Report) -> list[str]:
    run = report.run
    icon = _ICON.get(run.status, "⚠️")
    title = f"## {icon} runbook {code(run.runbook_name)}: **{plain(run.status)}**"
    lines = [title, ""]
    if run.message:
        lines += [f"> {plain(run.message)}", ""]
    facts = [
        ("run id", code(run.run_id or "-")),
        ("mode", plain(run.mode)),
        ("operator", plain(run.operator or "-")),
        ("started", plain(run.started_at or "-")),
        ("duration", _ms(run.duration_ms)),
        ("runbook", code(run.runbook or "-")),
    ]
    if run.params:
        params = ", ".join(f"{k}={v}" for k, v in run.params.items())
        facts.append(("params", code(params)))
    facts.append(("audit chain head", code(report.chain_head or "not recorded")))
    return [*lines, *(f"- **{name}**: {value}" for name, value in facts), ""]


def _hosts(hosts: tuple[HostReport, ...]) -> list[str]:
    rows = [
        [
            plain(h.name),
            plain(h.status),
            *(str(h.count(s)) for s in ("ok", "changed", "skipped", "failed")),
        ]
        for h in hosts
    ]
    header = ["host", "status", "ok", "changed", "skipped", "failed"]
    return ["### Hosts", "", *_table(header, rows)]


def _step_row(run: StepRun) -> list[str]:
    attempts = str(run.attempts) + (
        f" ({len(run.retries)} retried)" if run.retries else ""
    )
    return [
        plain(run.host),
        plain("undo" if run.kind == "undo" else run.phase),
        code(run.step),
        plain(run.status),
        attempts,
        _ms(run.duration_ms),
        "" if run.rc is None else str(run.rc),
        plain(run.message or ""),
    ]


# the columns of a step row, for the steps table and the rollback table alike
_STEP_COLUMNS = [
    "host",
    "phase",
    "step",
    "status",
    "attempts",
    "duration",
    "rc",
    "message",
]


def _steps(report: Report) -> list[str]:
    rows = [_step_row(run) for run in report.all_steps() if run.kind == "step"]
    header = _STEP_COLUMNS
    return ["### Steps", "", *_table(header, rows)]


def _go_no_go(gate: GoNoGo) -> list[str]:
    verdict = "GO" if gate.go else "NO-GO"
    rows = [
        [plain(c.name), plain(c.host), plain(c.status), plain(c.message)]
        for c in gate.checks
    ]
    return [
        f"### Go / no-go: {verdict}",
        "",
        *_table(["check", "host", "status", "message"], rows),
    ]


def _approvals(report: Report) -> list[str]:
    if not report.approvals:
        return []
    rows = [
        [
            code(a.step),
            plain(a.question),
            "approved" if a.approved else "refused",
            plain(a.operator),
            plain(a.via),
        ]
        for a in report.approvals
    ]
    return [
        "### Approvals",
        "",
        *_table(["step", "question", "answer", "by", "via"], rows),
    ]


def _rollback(rollback: Rollback, report: Report) -> list[str]:
    if rollback.skipped:
        state = "skipped (--no-rollback)"
    elif not rollback.finished:
        state = "never finished"
    else:
        state = "complete" if rollback.ok else "INCOMPLETE"
    lines = ["### Rollback: " + state, ""]
    if rollback.reason:
        lines += [f"Reason: {plain(rollback.reason)}", ""]
    undos = [
        _step_row(r)
        for r in report.all_steps()
        if r.kind == "undo" or r.phase == "rollback"
    ]
    if undos:
        header = _STEP_COLUMNS
        lines += _table(header, undos)
    return lines


def _drill(drill: DrillReport) -> list[str]:
    lines = [f"### DrillReport: {'PASS' if drill.passed else 'FAIL'}", ""]
    lines.append(
        f"- failure injected at {code(drill.fail_at)}: {plain(drill.failure or '-')}"
    )
    lines.append(f"- recovery time: {_ms(drill.recovery_ms)}")
    lines += [f"- differs after rollback: {plain(d)}" for d in drill.differences]
    return [*lines, ""]


def _needs_human(report: Report) -> list[str]:
    failed = [r for r in report.all_steps() if r.failed]
    if not report.needs_human and not failed:
        return []
    lines = ["### Needs a human", ""]
    lines += [f"- {plain(item)}" for item in report.needs_human]
    lines += [f"- {plain(r.host)} {code(r.label)} {plain(r.status)}" for r in failed]
    lines.append("")
    for run in failed:
        tail = "\n".join(t for t in (run.stdout_tail, run.stderr_tail) if t)
        summary = f"{plain(run.host)} {plain(run.label)}: output tail"
        lines += ["<details>", f"<summary>{summary}</summary>", ""]
        if run.command:
            lines += _fence(f"$ {run.command}")
        lines += [*_fence(tail or "(no output)"), "", "</details>", ""]
    return lines


def render_markdown(report: Report) -> str:
    lines = _headline(report) + _hosts(report.hosts)
    if report.go_no_go is not None:
        lines += _go_no_go(report.go_no_go)
    lines += _steps(report) + _approvals(report)
    if report.rollback is not None:
        lines += _rollback(report.rollback, report)
    if report.drill is not None:
        lines += _drill(report.drill)
    lines += _needs_human(report)
    return "\n".join(lines).rstrip("\n") + "\n"
