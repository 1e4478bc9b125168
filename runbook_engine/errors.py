"""Every exception we raise on purpose, and the exit codes they map to.

Outcomes (a command exiting 3, a failed assert, a timeout) are *data* (``StepResult``),
never exceptions. Exceptions mean "we cannot (safely) go on"::

    RunbookError              (1)  base of everything we raise on purpose
    ├── InputError            (2)  carries list[Diagnostic]; nothing ran
    │   ├── ParamError             unknown / missing / ill-typed param
    │   ├── InventoryError
    │   ├── SecretError            names the secret, never its value
    │   ├── ResumeError            a run that cannot be resumed
    │   └── StateStoreError        the state database: a malformed URL, or it cannot
    │                              be reached or used (the cause in our words)
    ├── NoGoError             (4)  refused, nothing changed
    │   ├── LockHeldError
    │   ├── StateDirError          state dir / audit log unusable at start
    │   └── ApprovalRefusedError
    ├── TransportError        (1)  raised only by transports/, mapped once
    │   ├── ConnectError           refused, unreachable, DNS, no banner
    │   ├── AuthError
    │   ├── HostKeyError           UnknownHostKeyError, ChangedHostKeyError
    │   └── ConnectionLostError
    ├── AuditError            (3)  the log stopped being writable mid-run
    └── RenderError           (1)  a template failed at run time (becomes a failed step)

Only ``cli.py`` prints errors and picks exit codes.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from .diagnostics import Diagnostic


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1
    INVALID = 2
    ROLLBACK_FAILED = 3
    NO_GO = 4
    INTERNAL = 70
    HANGUP = 129
    INTERRUPTED = 130
    TERMINATED = 143


class RunbookError(Exception):
    exit_code: ClassVar[ExitCode] = ExitCode.FAILED


class InputError(RunbookError):
    """Bad input: a runbook, inventory, param or CLI usage. Nothing ran."""

    exit_code = ExitCode.INVALID

    def __init__(self, message: str, diagnostics: list[Diagnostic] | None = None):
        super().__init__(message)
        self.diagnostics: list[Diagnostic] = list(diagnostics or [])


class ParamError(InputError):
    pass


class InventoryError(InputError):
    pass


class SecretError(InputError):
    pass


class ResumeError(InputError):
    pass


class StateStoreError(InputError):
    """The state database cannot be used: nothing ran (mid-run, the audit writer
    turns it into ``AuditError``)."""


class NoGoError(RunbookError):
    exit_code = ExitCode.NO_GO


class LockHeldError(NoGoError):
    pass


class StateDirError(NoGoError):
    pass


class ApprovalRefusedError(NoGoError):
    pass


class TransportError(RunbookError):
    """A host could not be reached or talked to. ``retryable`` is False for trust and
    auth failures, which must never be retried."""

    retryable: ClassVar[bool] = True


class ConnectError(TransportError):
    pass


class AuthError(TransportError):
    retryable = False


class HostKeyError(TransportError):
    retryable = False


class UnknownHostKeyError(HostKeyError):
    pass


class ChangedHostKeyError(HostKeyError):
    pass


class ConnectionLostError(TransportError):
    """The connection dropped while a command ran: its outcome is unknown."""


class AuditError(RunbookError):
    exit_code = ExitCode.ROLLBACK_FAILED


class ReportError(RunbookError):
    """A report could not be written after the run (the audit log has the run):
    a human must look, exit 3."""

    exit_code = ExitCode.ROLLBACK_FAILED


class RenderError(RunbookError):
    pass
