"""Builds the report model of one run from its ordered event records.

Records come either from a live run (``{"event": name, **event.record()}``) or from
the audit log (the same fields plus ``ts``, ``run_id``, ``seq``, ``prev_hash`` and
maybe ``hmac``). The builder tolerates both, and a list cut short by a crash: a step
that started and never finished is ``unfinished``. Times on the timeline are
milliseconds since the run started, taken from ``started_at`` (epoch seconds) and
``duration_ms`` of ``step.finished`` / ``undo.finished``, or from ``ts`` when a
record has no ``started_at``. Everything in the records is already masked.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .events import Approval, DrillReport, GoNoGo, Notice
from .report_model import (
    UNFINISHED,
    HostReport,
    Report,
    ReportHeader,
    Retry,
    Rollback,
    StepRun,
)
from .results import Attention, CheckRow, StepResult, UndoDone

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

_PHASE_OF = {"step": "steps", "undo": "rollback"}  # when a record has no phase


def build_report(
    records: Sequence[Mapping[str, Any]],
    chain_head: str | None = None,
    run_id: str | None = None,
) -> Report:
    """The report of one run from its records, in the order they were emitted.
    ``run_id`` names a live run (audit records carry their own)."""
    builder = _Builder(records)
    builder.run_id = run_id
    for record in records:
        handler = _HANDLERS.get(str(record.get("event", "")))
        if handler is not None:
            handler(builder, record)
    return builder.finish(chain_head)


def parse_ts(value: object) -> float | None:
    """Epoch seconds of an audit ``ts`` (ISO 8601, ``Z``), None when absent/bad."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _origin(records: Sequence[Mapping[str, Any]]) -> float | None:
    """Epoch seconds the run started: its ``run.started`` ts, else the earliest
    step start."""
    for record in records:
        if record.get("event") == "run.started":
            stamp = parse_ts(record.get("ts"))
            if stamp is not None:
                return stamp
    starts = [_float(r.get("started_at")) for r in records]
    known = [s for s in starts if s > 0]
    if known:
        return min(known)
    stamps = [parse_ts(r.get("ts")) for r in records]
    return min((s for s in stamps if s is not None), default=None)


def _float(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _int(value: object, default: int = 0) -> int:
    return int(value) if isinstance(value, int | float) else default


def _opt_int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def _str(value: object, default: str = "") -> str:
    return default if value is None else str(value)


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


class _Builder:
    def __init__(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.origin = _origin(records)
        self.started: Mapping[str, Any] = {}
        self.finished: Mapping[str, Any] | None = None
        self.host_order: dict[str, None] = {}
        self.facts: dict[str, Mapping[str, str]] = {}
        self.runs: dict[str, list[StepRun]] = {}
        self.open: dict[tuple[str, str, str], Mapping[str, Any]] = {}
        self.retries: dict[tuple[str, str], list[Retry]] = {}
        self.batches: list[tuple[str, ...]] = []
        self.go_no_go: GoNoGo | None = None
        self.approvals: list[Approval] = []
        self.rollback: Rollback | None = None
        self.drill: DrillReport | None = None
        self.notices: list[Notice] = []
        self.last_ms = 0
        self.run_id: str | None = None

    # -- time ---------------------------------------------------------------------

    def offset_ms(self, epoch: float | None) -> int | None:
        if epoch is None or self.origin is None:
            return None
        return max(0, round((epoch - self.origin) * 1000))

    def start_of(
        self, record: Mapping[str, Any], opened: Mapping[str, Any] | None
    ) -> int | None:
        started_at = _float(record.get("started_at"))
        if started_at > 0:
            return self.offset_ms(started_at)
        if opened is not None and parse_ts(opened.get("ts")) is not None:
            return self.offset_ms(parse_ts(opened.get("ts")))
        end = parse_ts(record.get("ts"))
        if end is not None:
            return self.offset_ms(end - _int(record.get("duration_ms")) / 1000)
        return None

    def cursor(self, host: str) -> int:
        """Where a step of unknown start goes: after the host's previous one."""
        runs = self.runs.get(host) or []
        ends = [r.start_ms + r.duration_ms for r in runs if r.start_ms is not None]
        return max(ends, default=0)

    def note_time(self, record: Mapping[str, Any]) -> None:
        stamp = self.offset_ms(parse_ts(record.get("ts")))
        if stamp is not None:
            self.last_ms = max(self.last_ms, stamp)

    # -- hosts and steps ----------------------------------------------------------

    def host(self, name: object) -> str:
        host = _str(name) or "(control)"
        self.host_order.setdefault(host, None)
        return host

    def add_run(self, run: StepRun) -> None:
        self.runs.setdefault(run.host, []).append(run)
        if run.start_ms is not None:
            self.last_ms = max(self.last_ms, run.start_ms + run.duration_ms)

    def finish_step(self, record: Mapping[str, Any], kind: str) -> None:
        host = self.host(record.get("host"))
        result = replace(StepResult.from_record(record), host=host)
        opened = self.open.pop((kind, host, result.step_id), None)
        start = self.start_of(record, opened)
        retries = self.retries.pop((host, result.step_id), []) if kind == "step" else []
        self.add_run(
            StepRun.of(
                kind,
                result,
                start_ms=self.cursor(host) if start is None else start,
                status=_str(record.get("status"), "unknown"),
                phase=_str(
                    record.get("phase"), "rollback" if kind == "undo" else "steps"
                ),
                retries=tuple(retries),
            )
        )

    def unfinished(self) -> None:
        """Steps that started and never finished (the run was killed)."""
        for (kind, host, step), record in self.open.items():
            start = self.offset_ms(parse_ts(record.get("ts")))
            begin = self.cursor(host) if start is None else start
            self.add_run(
                StepRun(
                    kind=kind,
                    step=step,
                    host=host,
                    phase=_str(record.get("phase"), "rollback"),
                    status=UNFINISHED,
                    rc=None,
                    attempts=_int(record.get("attempt"), 1),
                    duration_ms=max(0, self.last_ms - begin),
                    start_ms=begin,
                    command=_opt_str(record.get("command")),
                    message="started and never finished",
                    stdout_tail="",
                    stderr_tail="",
                )
            )
        self.open.clear()

    # -- the end ------------------------------------------------------------------

    def finish(self, chain_head: str | None) -> Report:
        self.unfinished()
        run = self.run_info()
        final = dict((self.finished or {}).get("hosts") or {})
        hosts = tuple(
            self.host_report(name, final.get(name)) for name in self.host_order
        )
        span = max(self.last_ms, run.duration_ms or 0, 1)
        rollback = _rollback_span(self.rollback, hosts)
        return Report(
            run=run,
            hosts=hosts,
            batches=tuple(self.batches),
            go_no_go=self.go_no_go,
            approvals=tuple(self.approvals),
            rollback=rollback,
            drill=self.drill,
            notices=tuple(self.notices),
            needs_human=_needs_human(run, rollback, hosts),
            span_ms=span,
            chain_head=chain_head,
        )

    def host_report(self, name: str, final: object) -> HostReport:
        runs = tuple(sorted(self.runs.get(name, []), key=lambda r: r.start_ms or 0))
        if final is None:
            failed = any(r.failed for r in runs if r.kind == "step")
            final = "failed" if failed else ("ok" if self.finished else UNFINISHED)
        return HostReport(
            name=name,
            status=str(final),
            facts=dict(self.facts.get(name, {})),
            steps=runs,
        )

    def run_info(self) -> ReportHeader:
        started, finished = self.started, self.finished or {}
        return ReportHeader(
            run_id=self.run_id
            or _opt_str(started.get("run_id") or finished.get("run_id")),
            runbook=_str(started.get("runbook")),
            runbook_name=_str(started.get("runbook_name"))
            or _str(started.get("runbook")),
            runbook_sha256=_opt_str(started.get("runbook_sha256")),
            git_commit=_opt_str(started.get("git_commit")),
            operator=_str(started.get("operator")),
            command_line=_str(started.get("command_line")),
            mode=_str(started.get("mode"), "run"),
            params=dict(started.get("params") or {}),
            inventory=_opt_str(started.get("inventory")),
            limit=_opt_str(started.get("limit")),
            resumed_from=_opt_str(started.get("resumed_from")),
            started_at=_started_at(started, self.origin),
            finished=self.finished is not None,
            status=_str(finished.get("status"), UNFINISHED),
            duration_ms=_opt_int(finished.get("duration_ms")),
            message=_opt_str(finished.get("message")),
        )


def _started_at(started: Mapping[str, Any], origin: float | None) -> str | None:
    if started.get("ts"):
        return str(started["ts"])
    if origin is None:
        return None
    from datetime import UTC

    stamp = datetime.fromtimestamp(origin, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _rollback_span(
    rollback: Rollback | None, hosts: tuple[HostReport, ...]
) -> Rollback | None:
    """Live records have no ``ts``: the rollback spans its undos and rollback steps."""
    if rollback is None or rollback.start_ms is not None:
        return rollback
    runs = [
        r
        for host in hosts
        for r in host.steps
        if (r.kind == "undo" or r.phase == "rollback") and r.start_ms is not None
    ]
    if not runs:
        return rollback
    start = min(r.start_ms or 0 for r in runs)
    end = max((r.start_ms or 0) + r.duration_ms for r in runs)
    return replace(rollback, start_ms=start, end_ms=end if rollback.finished else None)


def _needs_human(
    run: ReportHeader, rollback: Rollback | None, hosts: tuple[HostReport, ...]
) -> tuple[str, ...]:
    needs: list[str] = []
    if rollback is not None:
        needs += [f"{a.host} {a.step}: {a.what}" for a in rollback.needs_attention]
        if rollback.skipped:
            needs.append(
                "rollback was skipped (--no-rollback): hosts were left as they were"
            )
        elif not rollback.finished:
            needs.append("the rollback started and never finished")
    if run.status == "rollback_failed" and not needs:
        needs.append("the rollback failed or was incomplete")
    if not run.finished:
        needs.append("the run never finished (killed or crashed): check the hosts")
    if run.status == "interrupted":
        needs.append("the run was interrupted: check the hosts")
    needs += [
        f"{r.host} {r.step}: state unknown (connection lost during the step)"
        for host in hosts
        for r in host.steps
        if r.status == "unknown"
    ]
    return tuple(needs)


# -- event handlers -----------------------------------------------------------------


def _on_run_started(b: _Builder, r: Mapping[str, Any]) -> None:
    b.started = r
    for name in r.get("hosts") or []:
        b.host(name)


def _on_host_connected(b: _Builder, r: Mapping[str, Any]) -> None:
    b.facts[b.host(r.get("host"))] = {
        str(k): str(v) for k, v in (r.get("facts") or {}).items()
    }


def _on_batch(b: _Builder, r: Mapping[str, Any]) -> None:
    b.batches.append(tuple(str(h) for h in r.get("hosts") or []))


def _on_step_started(b: _Builder, r: Mapping[str, Any]) -> None:
    b.note_time(r)
    b.open[("step", b.host(r.get("host")), _str(r.get("step")))] = r


def _on_undo_started(b: _Builder, r: Mapping[str, Any]) -> None:
    b.note_time(r)
    b.open[("undo", b.host(r.get("host")), _str(r.get("step")))] = r


def _on_retry(b: _Builder, r: Mapping[str, Any]) -> None:
    key = (b.host(r.get("host")), _str(r.get("step")))
    retry = Retry(
        attempt=_int(r.get("attempt"), 1),
        cause=_str(r.get("cause")),
        next_delay_ms=_int(r.get("next_delay_ms")),
    )
    b.retries.setdefault(key, []).append(retry)


def _on_step_finished(b: _Builder, r: Mapping[str, Any]) -> None:
    b.finish_step(r, "step")


def _on_undo_finished(b: _Builder, r: Mapping[str, Any]) -> None:
    b.finish_step(r, "undo")


def _on_approval(b: _Builder, r: Mapping[str, Any]) -> None:
    b.approvals.append(
        Approval(
            step=_str(r.get("step")),
            host=_str(r.get("host")),
            question=_str(r.get("question")),
            answer=_str(r.get("answer")),
            approved=bool(r.get("approved")),
            operator=_str(r.get("operator")),
            via=_str(r.get("via")),
        )
    )


def _checks(rows: Any) -> tuple[CheckRow, ...]:
    return tuple(CheckRow.from_record(row) for row in rows or [])


def _on_go_no_go(b: _Builder, r: Mapping[str, Any]) -> None:
    b.go_no_go = GoNoGo(go=bool(r.get("go")), checks=_checks(r.get("checks")))


def _on_rollback_started(b: _Builder, r: Mapping[str, Any]) -> None:
    b.note_time(r)
    b.rollback = Rollback(
        reason=_str(r.get("reason")),
        scope=_str(r.get("scope")),
        hosts=tuple(str(h) for h in r.get("hosts") or []),
        finished=False,
        ok=False,
        skipped=False,
        needs_attention=(),
        start_ms=b.offset_ms(parse_ts(r.get("ts"))),
        end_ms=None,
    )


def _on_rollback_finished(b: _Builder, r: Mapping[str, Any]) -> None:
    b.note_time(r)
    previous = b.rollback
    attention = tuple(Attention.from_record(a) for a in r.get("needs_attention") or [])
    b.rollback = Rollback(
        reason=previous.reason if previous else "",
        scope=previous.scope if previous else "",
        hosts=previous.hosts if previous else (),
        finished=True,
        ok=bool(r.get("ok")),
        skipped=bool(r.get("skipped", False)),
        needs_attention=attention,
        start_ms=previous.start_ms if previous else None,
        end_ms=b.offset_ms(parse_ts(r.get("ts"))),
    )


def _on_drill(b: _Builder, r: Mapping[str, Any]) -> None:
    b.drill = DrillReport(
        passed=bool(r.get("passed")),
        fail_at=_str(r.get("fail_at")),
        failure=_opt_str(r.get("failure")),
        steps_done=tuple(str(s) for s in r.get("steps_done") or []),
        undos=tuple(UndoDone.from_record(u) for u in r.get("undos") or []),
        checks_before=_checks(r.get("checks_before")),
        checks_after=_checks(r.get("checks_after")),
        differences=tuple(str(d) for d in r.get("differences") or []),
        recovery_ms=_opt_int(r.get("recovery_ms")),
        trivial=bool(r.get("trivial", False)),
    )


def _on_notice(b: _Builder, r: Mapping[str, Any]) -> None:
    b.notices.append(
        Notice(
            kind=_str(r.get("kind")),
            message=_str(r.get("message")),
            host=_opt_str(r.get("host")),
        )
    )


def _on_run_finished(b: _Builder, r: Mapping[str, Any]) -> None:
    b.note_time(r)
    b.finished = r


_HANDLERS: dict[str, Callable[[_Builder, Mapping[str, Any]], None]] = {
    "run.started": _on_run_started,
    "host.connected": _on_host_connected,
    "batch.started": _on_batch,
    "step.started": _on_step_started,
    "step.retry": _on_retry,
    "step.finished": _on_step_finished,
    "approval": _on_approval,
    "go_no_go": _on_go_no_go,
    "rollback.started": _on_rollback_started,
    "undo.started": _on_undo_started,
    "undo.finished": _on_undo_finished,
    "rollback.finished": _on_rollback_finished,
    "drill.report": _on_drill,
    "notice": _on_notice,
    "run.finished": _on_run_finished,
}
