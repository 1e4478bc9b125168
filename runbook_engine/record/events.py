"""What the engine tells the world while it runs. The console, the audit log, the run
state and the reports subscribe; the engine knows none of them.

Each event is a frozen dataclass with the audit vocabulary as its ``name`` and its
fields as the record body (``record()``). Secrets are masked by ``MultiSink`` before
any subscriber sees an event.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..secrets import Masker
    from .results import Attention, CheckRow, StepResult, UndoDone


class Status(enum.StrEnum):
    """Outcome of one step on one host."""

    OK = "ok"
    CHANGED = "changed"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the connection dropped while the command ran

    @property
    def succeeded(self) -> bool:
        return self in (Status.OK, Status.CHANGED, Status.SKIPPED)


class RunStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    NO_GO = "no_go"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    name: ClassVar[str]

    def record(self) -> dict[str, Any]:
        """The event's fields as a new dict, typed rows (``CheckRow``...) as dicts.
        This runs several times per step, so it avoids ``dataclasses.asdict``'s deep
        copy of the plain data (text, numbers, mappings) that most fields hold."""
        return {name: _plain(getattr(self, name)) for name in _field_names(type(self))}


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(Event):
    name = "run.started"
    runbook: str
    runbook_name: str
    runbook_sha256: str
    git_commit: str | None
    params: Mapping[str, Any]
    operator: str
    command_line: str
    hosts: Sequence[str]
    inventory: str | None = None
    limit: str | None = None
    resumed_from: str | None = None  # the run a resume continues or a rollback undoes
    mode: str = "run"  # run | check | drill | resume | rollback | plan
    lock: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HostConnected(Event):
    name = "host.connected"
    host: str
    facts: Mapping[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchStarted(Event):
    name = "batch.started"
    batch: int
    hosts: Sequence[str]
    plan: Sequence[Sequence[str]] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class StepStarted(Event):
    name = "step.started"
    step: str
    host: str
    phase: str
    action: str
    command: str | None
    attempt: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRetry(Event):
    name = "step.retry"
    step: str
    host: str
    attempt: int
    cause: str
    next_delay_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StepFinished(Event):
    name = "step.finished"
    step: str
    host: str
    phase: str
    status: Status
    rc: int | None
    attempt: int
    duration_ms: int
    command: str | None
    message: str | None
    stdout_tail: str
    stderr_tail: str
    changed: bool = False
    started_at: float = 0.0
    http_status: int | None = None
    set_vars: Mapping[str, Any] = field(default_factory=dict)
    transfer: str | None = None  # copy/template: how the file travelled

    @classmethod
    def of(cls, result: StepResult) -> StepFinished:
        return cls(**result.record_fields())


@dataclass(frozen=True, slots=True, kw_only=True)
class Approval(Event):
    name = "approval"
    step: str
    host: str
    question: str
    answer: str
    approved: bool
    operator: str
    via: str  # tty | --yes | --approve | remote | no TTY ... | no answer within ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalWaiting(Event):
    """A gate waits for an answer: typed on the TTY (``tty``), or given from
    anywhere with ``runbook approve`` (which reads ``confirm`` here)."""

    name = "approval.waiting"
    step: str
    host: str
    question: str
    confirm: str | None
    timeout_ms: int | None
    tty: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class GoNoGo(Event):
    name = "go_no_go"
    go: bool
    checks: Sequence[CheckRow]


@dataclass(frozen=True, slots=True, kw_only=True)
class RollbackStarted(Event):
    name = "rollback.started"
    hosts: Sequence[str]
    reason: str
    scope: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UndoStarted(Event):
    name = "undo.started"
    step: str
    host: str
    command: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class UndoFinished(Event):
    name = "undo.finished"
    step: str
    host: str
    status: Status
    rc: int | None
    duration_ms: int
    message: str | None
    stderr_tail: str = ""
    stdout_tail: str = ""
    started_at: float = 0.0

    @classmethod
    def of(cls, result: StepResult) -> UndoFinished:
        return cls(
            step=result.step_id,
            host=result.host,
            status=result.status,
            rc=result.rc,
            duration_ms=int(result.duration * 1000),
            message=result.message,
            stdout_tail=_last_lines(result.stdout),
            stderr_tail=_last_lines(result.stderr),
            started_at=result.started_at,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RollbackFinished(Event):
    name = "rollback.finished"
    ok: bool
    needs_attention: Sequence[Attention] = ()
    skipped: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice(Event):
    """Something the operator should know (audited): accepted host key, no-rollback."""

    name = "notice"
    kind: str
    message: str
    host: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished(Event):
    name = "run.finished"
    status: RunStatus
    duration_ms: int
    hosts: Mapping[str, str]  # host -> final host status
    message: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DrillReport(Event):
    name = "drill.report"
    passed: bool
    fail_at: str
    failure: str | None
    steps_done: Sequence[str]
    undos: Sequence[UndoDone]
    checks_before: Sequence[CheckRow]
    checks_after: Sequence[CheckRow]
    differences: Sequence[str]
    recovery_ms: int | None
    trivial: bool = False  # nothing compared and nothing undone: it proves nothing


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type[Event]) -> tuple[str, ...]:
    # dataclasses.fields() leaves out the ClassVar `name`; cached, as it runs for
    # every event several times per step
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def _last_lines(text: str, lines: int = 10) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _plain(value: Any) -> Any:
    """A field value for a record: typed rows become dicts, the rest is kept."""
    if isinstance(value, list | tuple) and value and dataclasses.is_dataclass(value[0]):
        return [_row(item) for item in value]
    return value


def _row(row: Any) -> dict[str, Any]:
    return {f.name: getattr(row, f.name) for f in fields(row)}


def masked(event: Event, masker: Masker) -> Event:
    """The event with its text fields (and the text inside mappings, lists and typed
    rows) masked; status words (enums) and numbers are left as they are."""
    changes = {}
    for name in _field_names(type(event)):
        value = getattr(event, name)
        if isinstance(value, enum.Enum):
            continue
        if isinstance(value, str | Mapping | list | tuple):
            changes[name] = _mask(value, masker)
    return replace(event, **changes)


def _mask(value: Any, masker: Masker) -> Any:
    if isinstance(value, list | tuple) and value and dataclasses.is_dataclass(value[0]):
        return [_mask_row(row, masker) for row in value]
    return masker.mask_data(value)


def _mask_row(row: Any, masker: Masker) -> Any:
    changes = {
        f.name: masker.mask(value)
        for f in fields(row)
        if isinstance(value := getattr(row, f.name), str)
    }
    return replace(row, **changes)


class EventSink(Protocol):
    def emit(self, event: Event) -> None: ...

    def barrier(self) -> None:
        """Make everything emitted so far durable before an action starts."""
        ...


class MultiSink:
    """Fans events out to several sinks, in order. With a masker, every secret in an
    event's text is masked once here, before any sink (console, audit log, run state,
    reports) sees it."""

    def __init__(self, *sinks: EventSink, masker: Masker | None = None) -> None:
        self.sinks = list(sinks)
        self.masker = masker

    def emit(self, event: Event) -> None:
        if self.masker is not None and self.masker.active:
            event = masked(event, self.masker)
        for sink in self.sinks:
            sink.emit(event)

    def barrier(self) -> None:
        for sink in self.sinks:
            sink.barrier()
