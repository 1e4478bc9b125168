"""One run as a report: the model every report format (json, junit, markdown, html)
renders. Times on its timeline are milliseconds since the run started; everything in
it is already masked.

Knows nothing about output formats, nor about records (``report_build`` turns a
run's records into this model). The rows it shares with the engine (``CheckRow``,
``Attention``, ``UndoDone``) and the events it keeps as they were recorded
(``GoNoGo``, ``Approval``, ``Notice``, ``DrillReport``) are the same classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .events import Approval, DrillReport, GoNoGo, Notice
    from .results import Attention, StepResult

SCHEMA_VERSION = 1
UNFINISHED = "unfinished"
_FAILED = ("failed", "unknown", UNFINISHED)


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """One failed attempt that was retried."""

    attempt: int
    cause: str
    next_delay_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRun:
    """A step (``kind="step"``) or an undo (``kind="undo"``) on one host."""

    kind: str
    step: str
    host: str
    phase: str
    status: str
    rc: int | None
    attempts: int
    duration_ms: int
    start_ms: int | None  # since the run started; None when unknown
    command: str | None
    message: str | None
    stdout_tail: str
    stderr_tail: str
    changed: bool = False
    http_status: int | None = None
    retries: tuple[Retry, ...] = ()

    @classmethod
    def of(
        cls,
        kind: str,
        result: StepResult,
        *,
        start_ms: int | None,
        status: str,
        phase: str,
        retries: tuple[Retry, ...] = (),
    ) -> StepRun:
        """A step or undo as reported, from the result its record holds."""
        return cls(
            kind=kind,
            step=result.step_id,
            host=result.host,
            phase=phase,
            status=status,
            rc=result.rc,
            attempts=result.attempts,
            duration_ms=int(result.duration * 1000),
            start_ms=start_ms,
            command=result.command,
            message=result.message,
            stdout_tail=result.stdout,
            stderr_tail=result.stderr,
            changed=result.changed,
            http_status=result.http_status,
            retries=retries,
        )

    @property
    def failed(self) -> bool:
        return self.status in _FAILED

    @property
    def label(self) -> str:
        return (
            f"undo {self.step}" if self.kind == "undo" else f"{self.phase}/{self.step}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class HostReport:
    name: str
    status: str
    facts: Mapping[str, str]
    steps: tuple[StepRun, ...]  # steps and undos, by start

    def count(self, status: str) -> int:
        return sum(
            1 for run in self.steps if run.kind == "step" and run.status == status
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Rollback:
    reason: str
    scope: str
    hosts: tuple[str, ...]
    finished: bool
    ok: bool
    skipped: bool
    needs_attention: tuple[Attention, ...]
    start_ms: int | None
    end_ms: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportHeader:
    run_id: str | None
    runbook: str
    runbook_name: str
    runbook_sha256: str | None
    git_commit: str | None
    operator: str
    command_line: str
    mode: str
    params: Mapping[str, Any]
    inventory: str | None
    limit: str | None
    resumed_from: str | None
    started_at: str | None  # UTC ISO 8601
    finished: bool
    status: str  # a RunStatus value, or "unfinished"
    duration_ms: int | None
    message: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    run: ReportHeader
    hosts: tuple[HostReport, ...]
    batches: tuple[tuple[str, ...], ...]
    go_no_go: GoNoGo | None
    approvals: tuple[Approval, ...]
    rollback: Rollback | None
    drill: DrillReport | None
    notices: tuple[Notice, ...]
    needs_human: tuple[str, ...]
    span_ms: int  # length of the timeline
    chain_head: str | None = None

    def all_steps(self) -> list[StepRun]:
        return [run for host in self.hosts for run in host.steps]
