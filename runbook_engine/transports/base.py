"""The transport contract: run one command on one host, stream its output, move a file.

A transport knows nothing about runbooks, steps, templates or the audit log. It maps
its library's exceptions to ``errors.TransportError`` subclasses once, here in
``transports/``, and nowhere else. File transfer is a contract of its own
(``files.FileTransfer``); a transport hands out the one that serves its host.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import threading
    from collections.abc import Mapping

    from .files import FileTransfer, RemoteFile, WriteResult


class Stream(enum.StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"


class OutputSink(Protocol):
    """Receives raw output chunks as they arrive (from the transport's thread)."""

    def write(self, stream: Stream, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecRequest:
    """One command. Exactly one of ``command`` (shell text for ``/bin/sh -c``) and
    ``argv`` (no shell) is set. ``env`` values may be secrets: transports must never
    put them on a command line (SSH sends them over the channel's stdin)."""

    command: str | None = None
    argv: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        if (self.command is None) == (self.argv is None):
            raise ValueError("ExecRequest needs exactly one of command and argv")


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecResult:
    """How one command ended.

    - ``rc``: the exit status when the command exited by itself; None when it did
      not (timed out, interrupted, or killed by a signal that we could see). Over
      SSH a command killed by a signal is reported by the remote ``/bin/sh`` as
      ``rc = 128 + N`` (a shell cannot tell that from a plain ``exit 128+N``);
      ``rc = -1`` when the server closed the session without any exit status.
    - ``signal``: the number of the signal that killed the command: locally from
      the process's wait status; over SSH from the server's ``exit-signal`` report,
      which comes only when the remote ``/bin/sh`` itself died by the signal (for
      example ``exec``-ed into the command, or killed along with it). None otherwise.
    - ``timed_out``: the step's timeout ran out; the whole process tree was killed.
    - ``interrupted``: cancelled (Ctrl-C, SIGTERM); the process tree was killed.
    """

    rc: int | None
    signal: int | None = None
    timed_out: bool = False
    interrupted: bool = False


class Transport(abc.ABC):
    """One host. ``exec`` may be called from several threads only one at a time per
    host (the executor runs one step per host at once); ``cancel`` may be set from any
    thread and must make ``exec`` kill the command's whole process tree and return
    ``ExecResult(rc=None, interrupted=True)`` promptly."""

    name: str

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the connection if not open yet (idempotent). Raises TransportError."""

    @abc.abstractmethod
    def exec(
        self, request: ExecRequest, sink: OutputSink, cancel: threading.Event
    ) -> ExecResult:
        """Run the command to completion, timeout or cancel. On timeout the whole
        process tree is killed and ``ExecResult(rc=None, timed_out=True)`` returned.
        Raises ConnectionLostError when the connection dropped mid-command."""

    @abc.abstractmethod
    def file_transfer(self) -> FileTransfer:
        """The file transfer that serves this host (connecting first if needed;
        over SSH: SFTP, or exec channels when the server has no SFTP subsystem).
        Raises TransportError."""

    def write_file(self, path: str, data: bytes, mode: int | None) -> WriteResult:
        """``FileTransfer.write_file`` through this host's file transfer."""
        return self.file_transfer().write_file(path, data, mode)

    def read_file(self, path: str) -> RemoteFile | None:
        """``FileTransfer.read_file`` through this host's file transfer."""
        return self.file_transfer().read_file(path)

    def remove_file(self, path: str) -> bool:
        """``FileTransfer.remove_file`` through this host's file transfer."""
        return self.file_transfer().remove_file(path)

    def describe(self) -> Mapping[str, str]:
        """Facts for the audit log (address, host key fingerprint, ...)."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to close locally
        """Release the connection."""
