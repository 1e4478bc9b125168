"""What an action reports for one attempt, as data (never an exception)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..record.events import Status


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What an action reports for one attempt."""

    status: Status
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    message: str | None = None
    http_status: int | None = None
    json: Any = None
    command: str | None = None  # what ran, for display (masked later)
    set_vars: Mapping[str, Any] = field(default_factory=dict)
    connection_lost: bool = False
    retryable: bool = True
    timed_out: bool = False
    interrupted: bool = False
    transfer: str | None = None  # how a file travelled: sftp | exec | local
