"""What a run produces, as frozen data shared by every layer that handles it: the
``StepResult`` of one step (or undo) on one host, and the typed rows of the go/no-go
table, of the rollback's attention list and of the undos done.

The stepper makes a ``StepResult`` from an action's outcome; the executor records it
(``StepFinished.of``); the run state and the report model read it back from an audit
or state record (``StepResult.from_record``). Its audit field names are the record's
(``step``, ``attempt``, ``duration_ms``, ``stdout_tail``...), written once, in
``record_fields``; everything else reads them from there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .events import Status

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True, slots=True, kw_only=True)
class StepResult:
    """One step or undo on one host. ``stdout``/``stderr`` are tails (masked);
    ``started_at`` is epoch seconds, ``duration`` seconds."""

    step_id: str
    host: str
    phase: str
    status: Status
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    json: Any = None
    http_status: int | None = None
    message: str | None = None
    command: str | None = None
    attempts: int = 1
    started_at: float = 0.0
    duration: float = 0.0
    set_vars: Mapping[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    ran_on: str | None = None  # for run_once copies: the host that really ran it
    transfer: str | None = None  # copy/template: how the file travelled

    @property
    def ok(self) -> bool:
        return self.status.succeeded

    @property
    def changed(self) -> bool:
        return self.status is Status.CHANGED

    def view(self) -> dict[str, Any]:
        """``steps.<id>`` in templates."""
        return {
            "rc": self.rc,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "json": self.json,
            "status": self.http_status
            if self.http_status is not None
            else self.status.value,
            "result": self.status.value,
            "ok": self.ok,
            "changed": self.changed,
            "failed": not self.ok,
            "skipped": self.status is Status.SKIPPED,
            "duration": round(self.duration, 3),
            "message": self.message,
        }

    def record_fields(self) -> dict[str, Any]:
        """The fields of its ``step.finished`` / ``undo.finished`` record."""
        return {
            "step": self.step_id,
            "host": self.host,
            "phase": self.phase,
            "status": self.status,
            "rc": self.rc,
            "attempt": self.attempts,
            "duration_ms": int(self.duration * 1000),
            "command": self.command,
            "message": self.message,
            "stdout_tail": self.stdout,
            "stderr_tail": self.stderr,
            "changed": self.changed,
            "started_at": self.started_at,
            "http_status": self.http_status,
            "set_vars": dict(self.set_vars),
            "transfer": self.transfer,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> StepResult:
        """The result a ``step.finished`` / ``undo.finished`` record describes
        (from the audit log or the run state; missing fields get their defaults)."""
        stdout = _text(record.get("stdout_tail"))
        status = _text(record.get("status"))
        return cls(
            step_id=_text(record.get("step")),
            host=_text(record.get("host")),
            phase=_text(record.get("phase")) or "steps",
            status=Status(status) if status in Status._value2member_map_ else _LOST,
            rc=_integer(record.get("rc")),
            stdout=stdout,
            stderr=_text(record.get("stderr_tail")),
            json=parse_json(stdout),
            http_status=_integer(record.get("http_status")),
            message=_optional_text(record.get("message")),
            command=_optional_text(record.get("command")),
            attempts=_integer(record.get("attempt")) or 1,
            started_at=_number(record.get("started_at")),
            duration=_number(record.get("duration_ms")) / 1000,
            set_vars=dict(record.get("set_vars") or {}),
            transfer=_optional_text(record.get("transfer")),
        )


_LOST = Status.UNKNOWN  # a record whose status is unreadable: treat as not done


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckRow:
    """One row of the go/no-go table (or of a drill's checks)."""

    step: str
    name: str
    host: str
    status: str
    message: str = ""

    @property
    def go(self) -> bool:
        return self.status in ("ok", "changed", "skipped")

    @classmethod
    def from_record(cls, row: Mapping[str, Any]) -> CheckRow:
        step = _text(row.get("step"))
        return cls(
            step=step,
            name=_text(row.get("name")) or step,
            host=_text(row.get("host")),
            status=_text(row.get("status")) or "unknown",
            message=_text(row.get("message")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Attention:
    """Something a rollback could not do: a human must look."""

    host: str
    step: str
    what: str

    @classmethod
    def from_record(cls, row: Mapping[str, Any]) -> Attention:
        return cls(
            host=_text(row.get("host")),
            step=_text(row.get("step")),
            what=_text(row.get("what")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class UndoDone:
    """An undo that ran during a rollback, as a drill reports it."""

    host: str
    step: str
    status: str
    duration_ms: int

    @classmethod
    def from_record(cls, row: Mapping[str, Any]) -> UndoDone:
        return cls(
            host=_text(row.get("host")),
            step=_text(row.get("step")),
            status=_text(row.get("status")),
            duration_ms=_integer(row.get("duration_ms")) or 0,
        )


def parse_json(text: str) -> Any:
    """The JSON document a command printed (``steps.<id>.json``), or None."""
    stripped = text.strip()
    if not stripped or (stripped[0] not in '[{"' and not stripped[0].isdigit()):
        return None
    try:
        return json.loads(stripped)
    except ValueError:
        return None


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _optional_text(value: object) -> str | None:
    return None if value is None else str(value)


def _integer(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)
