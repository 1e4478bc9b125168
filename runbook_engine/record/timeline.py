"""``runbook audit show``: a past run's records as a readable timeline, one line per
record (date and time, then what happened, in words; never a Python repr), and the
filters that narrow it to a host, a step or a status."""

from __future__ import annotations

import fnmatch
import json
from typing import TYPE_CHECKING, Any

from .console import neutralise

if TYPE_CHECKING:
    from collections.abc import Callable


def _time(record: dict[str, Any]) -> str:
    """``2026-12-03 13:04:05.123`` from the record's UTC ``ts``."""
    ts = str(record.get("ts", ""))
    return f"{ts[:10]} {ts[11:23]}" if len(ts) >= 23 else ts


def _line(record: dict[str, Any]) -> str | None:
    event = record.get("event")
    describe: Callable[[dict[str, Any]], str] | None = _DESCRIBE.get(str(event))
    if describe is None:
        return _generic(record)
    return describe(record)


_CHAIN_FIELDS = frozenset({"ts", "run_id", "seq", "event", "prev_hash", "hmac"})


def _generic(record: dict[str, Any]) -> str:
    """A record of a kind this view does not know: its fields as ``key=value``."""
    fields = [
        f"{key}={_plain(value)}"
        for key, value in record.items()
        if key not in _CHAIN_FIELDS and value not in (None, "", [], {})
    ]
    return " ".join([str(record.get("event")), *fields])


def _plain(value: object) -> str:
    if isinstance(value, str):
        return value if " " not in value else json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _connected(record: dict[str, Any]) -> str:
    facts = record.get("facts") or {}
    if not isinstance(facts, dict):
        return f"connected {record.get('host')}"
    how = facts.get("connection", "ssh")
    where = f"{facts.get('user', '')}@{facts.get('address', '')}".strip("@")
    via = f" via {facts['via']}" if facts.get("via") else ""
    key = (
        f", host key {facts.get('host_key_type', '')} {facts['host_key']}"
        f" ({facts.get('host_key_status', '')})"
        if facts.get("host_key")
        else ""
    )
    return f"connected {record.get('host')}: {how} {where}{via}{key}".rstrip()


def _lock_broken(record: dict[str, Any]) -> str:
    holder = record.get("holder")
    try:
        held = json.loads(holder) if isinstance(holder, str) else dict(holder or {})
    except (ValueError, TypeError):
        held = {}
    by = (
        f" (held by {held.get('operator')}, run {held.get('run_id')},"
        f" since {held.get('since')})"
        if held
        else ""
    )
    forced = ", forced" if record.get("forced") else ""
    return (
        f"lock {record.get('lock')!r} on {record.get('where')} broken by"
        f" {record.get('operator')}{forced}{by}"
    )


def matches(
    record: dict[str, Any],
    *,
    host: str | None = None,
    step: str | None = None,
    status: str | None = None,
) -> bool:
    """Does a record pass the filters? Each filter needs the field it names (a step
    filter keeps step and undo records of that step; ``fnmatch`` patterns work);
    the run's first and last records always pass, to frame what is shown."""
    if record.get("event") in ("run.started", "run.finished"):
        return True
    wanted = {"host": host, "step": step, "status": status}
    for name, pattern in wanted.items():
        if pattern is None:
            continue
        value = record.get(name)
        if value is None or not fnmatch.fnmatchcase(str(value), pattern):
            return False
    return True


_DESCRIBE: dict[str, Callable[[dict[str, Any]], str]] = {
    "run.started": lambda r: (
        f"run started: {r.get('runbook')} ({r.get('mode', 'run')})"
        f" by {r.get('operator')}"
        f" on {', '.join(r.get('hosts') or [])}; params"
        f" {json.dumps(r.get('params') or {}, sort_keys=True)}"
        + (f"; resumes {r['resumed_from']}" if r.get("resumed_from") else "")
    ),
    "host.connected": _connected,
    "lock.broken": _lock_broken,
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
    "approval.waiting": lambda r: (
        f"{r.get('host')} {r.get('step')} waiting for approval: {r.get('question')}"
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
