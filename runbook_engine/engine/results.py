"""The outcome of one step on one host, as data (never an exception)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..record.events import Status

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True, slots=True, kw_only=True)
class StepResult:
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
    transfer: str | None = None  # copy/template: sftp | exec | local
    ran_on: str | None = None  # for run_once copies: the host that really ran it

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
