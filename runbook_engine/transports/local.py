"""Run commands on the control machine: one process per step, in a new session, so a
timeout or an interrupt kills the whole process group, children included. Files are
``files.LocalFiles``."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from typing import TYPE_CHECKING

from .base import ExecRequest, ExecResult, OutputSink, Stream, Transport
from .files import LocalFiles

if TYPE_CHECKING:
    import threading

_READ_SIZE = 64 * 1024
_KILL_GRACE = 0.5  # seconds between SIGTERM and SIGKILL of the process group
_DRAIN_GRACE = 0.2  # seconds to keep reading after exit when a child holds the pipes


class LocalTransport(Transport):
    def __init__(self, name: str = "local") -> None:
        self.name = name
        self._files = LocalFiles(name)

    def connect(self) -> None:
        pass

    def describe(self) -> dict[str, str]:
        return {"connection": "local"}

    def exec(
        self, request: ExecRequest, sink: OutputSink, cancel: threading.Event
    ) -> ExecResult:
        argv = request.argv or ("/bin/sh", "-c", request.command or "")
        env = {**os.environ, **request.env} if request.env else None
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=request.cwd,
            env=env,
            start_new_session=True,
        )
        try:
            return _supervise(proc, request.timeout, sink, cancel)
        finally:
            if proc.poll() is None:
                _kill_group(proc)
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()

    def file_transfer(self) -> LocalFiles:
        return self._files


def _supervise(
    proc: subprocess.Popen[bytes],
    timeout: float | None,
    sink: OutputSink,
    cancel: threading.Event,
) -> ExecResult:
    deadline = None if timeout is None else time.monotonic() + timeout
    assert proc.stdout is not None and proc.stderr is not None
    streams = {proc.stdout.fileno(): Stream.STDOUT, proc.stderr.fileno(): Stream.STDERR}
    exit_fd = os.pidfd_open(proc.pid)
    selector = selectors.DefaultSelector()
    try:
        for fd in streams:
            selector.register(fd, selectors.EVENT_READ)
        selector.register(exit_fd, selectors.EVENT_READ)
        exited_at: float | None = None
        while streams:
            wait = 0.1
            now = time.monotonic()
            if deadline is not None:
                wait = min(wait, max(deadline - now, 0))
            if exited_at is not None:
                wait = min(wait, max(exited_at + _DRAIN_GRACE - now, 0))
            for key, _ in selector.select(wait):
                fd = key.fd
                if fd == exit_fd:
                    selector.unregister(exit_fd)
                    exited_at = time.monotonic()
                    continue
                chunk = os.read(fd, _READ_SIZE)
                if chunk:
                    sink.write(streams[fd], chunk)
                else:
                    selector.unregister(fd)
                    del streams[fd]
            if cancel.is_set():
                _kill_group(proc)
                return ExecResult(rc=None, interrupted=True)
            now = time.monotonic()
            if deadline is not None and now >= deadline and proc.poll() is None:
                _kill_group(proc)
                return ExecResult(rc=None, timed_out=True)
            if exited_at is not None and now >= exited_at + _DRAIN_GRACE:
                break  # a background child still holds the pipes: stop listening
    finally:
        selector.close()
        os.close(exit_fd)
    return _wait(proc, deadline)


def _wait(proc: subprocess.Popen[bytes], deadline: float | None) -> ExecResult:
    try:
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0)
        rc = proc.wait(remaining)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return ExecResult(rc=None, timed_out=True)
    if rc < 0:  # killed by a signal: Popen reports -N
        return ExecResult(rc=None, signal=-rc)
    return ExecResult(rc=rc)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the step's process group, then SIGKILL what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(_KILL_GRACE if sig == signal.SIGTERM else None)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            # the leader is gone; children in the group may survive SIGTERM
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return
