"""``runbook audit show``: a past run's records as a readable timeline."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .console import neutralise

if TYPE_CHECKING:
    from collections.abc import Callable


def _time(record: dict[str, Any]) -> str:
    ts = str(record.get("ts", ""))
    return ts[11:23] if len(ts) >= 23 else ts


def _line(record: dict[str, Any]) -> str | None:
    event = record.get("event")
    describe: Callable[[dict[str, Any]], str] | None = _DESCRIBE.get(str(event))
    if describe is None:
        return f"{event}"
    return describe(record)


_DESCRIBE: dict[str, Callable[[dict[str, Any]], str]] = {
    "run.started": lambda r: (
        f"run started: {r.get('runbook')} ({r.get('mode', 'run')})"
        f" by {r.get('operator')}"
        f" on {', '.join(r.get('hosts') or [])}; params"
        f" {json.dumps(r.get('params') or {}, sort_keys=True)}"
        + (f"; resumes {r['resumed_from']}" if r.get("resumed_from") else "")
    ),
    "host.connected": lambda r: f"connected {r.get('host')}: {r.get('facts')}",
    "batch.started": lambda r: (
        f"batch {r.get('batch')}: {', '.join(r.get('hosts') or [])}"
    ),
    "step.started": lambda r: (
        f"{r.get('host')} {r.get('step')} started ({r.get('phase')})"
    ),
    "step.retry": lambda r: (
        f"{r.get('host')} {r.get('step')} attempt {r.get('attempt')} failed:"
        f" {r.get('cause')};"
        f" retry in {r.get('next_delay_ms')}ms"
    ),
    "step.finished": lambda r: (
        f"{r.get('host')} {r.get('step')} {r.get('status')}"
        + (f" rc={r['rc']}" if r.get("rc") is not None else "")
        + f" {r.get('duration_ms')}ms"
        + (f": {_first_line(r['command'])}" if r.get("command") else "")
        + (f" -- {r['message']}" if r.get("message") else "")
    ),
    "approval": lambda r: (
        f"{r.get('host')} {r.get('step')} approval:"
        f" {'approved' if r.get('approved') else 'refused'}"
        f" by {r.get('operator')} via {r.get('via')}"
    ),
    "go_no_go": lambda r: (
        "go/no-go: "
        + ("GO" if r.get("go") else "NO-GO")
        + "".join(
            f"\n      {c.get('status'):<8} {c.get('host')} {c.get('name')}"
            f" {c.get('message') or ''}"
            for c in r.get("checks") or []
        )
    ),
    "rollback.started": lambda r: (
        f"rollback started on {', '.join(r.get('hosts') or [])}: {r.get('reason')}"
    ),
    "undo.started": lambda r: f"{r.get('host')} {r.get('step')} undo started",
    "undo.finished": lambda r: (
        f"{r.get('host')} {r.get('step')} undo {r.get('status')}"
        f" {r.get('duration_ms')}ms"
        + (f" -- {r['message']}" if r.get("message") else "")
    ),
    "rollback.finished": lambda r: (
        "rollback "
        + ("complete" if r.get("ok") else "INCOMPLETE")
        + "".join(
            f"\n      needs a human: {a.get('host')} {a.get('step')}: {a.get('what')}"
            for a in r.get("needs_attention") or []
        )
    ),
    "drill.report": lambda r: (
        f"drill {'PASS' if r.get('passed') else 'FAIL'};"
        f" recovery {r.get('recovery_ms')}ms"
        + "".join(f"\n      differs: {d}" for d in r.get("differences") or [])
    ),
    "notice": lambda r: f"note: {r.get('message')}",
    "run.finished": lambda r: (
        f"run finished: {r.get('status')} in {r.get('duration_ms')}ms"
        + (f" -- {r['message']}" if r.get("message") else "")
    ),
    "audit.repaired": lambda r: f"audit log repaired: torn line {r.get('torn_line')}",
}


def _first_line(text: str) -> str:
    lines = text.strip().splitlines() or [""]
    return lines[0] + (" ..." if len(lines) > 1 else "")


def format_timeline(records: list[dict[str, Any]]) -> str:
    lines = []
    for record in records:
        text = _line(record)
        if text is not None:
            lines.append(f"{_time(record)}  {neutralise(text)}")
    return "\n".join(lines)
