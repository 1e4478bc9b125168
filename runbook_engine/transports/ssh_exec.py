"""Running commands over an ``SSHConnection`` (paramiko): one channel per command.

How a command runs: the exec request is always the same line, ``exec /bin/sh -s``,
so the login shell (bash, zsh, fish, csh...) never parses anything of ours. That
``/bin/sh`` reads a short script from the channel's stdin: print its pid, ``export``
the env values, ``cd``, then ``eval`` the command (POSIX sh, exactly as ``sh -c``
would run it, without a second shell process) with ``</dev/null``. Env values
therefore never appear on any command line nor depend on sshd's ``AcceptEnv``.
sshd starts each session in a new session and process group whose leader is that
``/bin/sh``, so a timeout or cancel kills the whole group with a second exec
(``kill -TERM -PID``, then ``-KILL``), not just the channel.

The outcome waits for the exit status as long as the command's own timeout allows
(without one, until the channel closes or the connection is lost): on a busy
controller the status can arrive seconds after the output streams closed, and a
fixed short wait turned successful commands into failures. ``run_script`` runs
internal scripts (the kill, ``$HOME``, the exec file transfer), optionally streaming
a payload to the script's stdin once it says it is ready for it.
"""

from __future__ import annotations

import re
import select
import shlex
import signal
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from ..errors import ConnectError, ConnectionLostError, TransportError
from .base import ExecRequest, ExecResult, OutputSink, Stream
from .ssh_wire import NETWORK_ERRORS

if TYPE_CHECKING:
    import paramiko

    from .ssh_connect import SSHConnection

_BOOTSTRAP = "exec /bin/sh -s"
_READ_SIZE = 32 * 1024
_SEND_SIZE = 32 * 1024  # one SSH packet; larger slices make paramiko copy a lot
_TICK = 0.1  # how often a waiting exec looks at cancel, deadline and the connection
_DRAIN_GRACE = 0.2  # keep reading after exit while a background child holds stdout
READY = b"ready\n"  # what a script prints when it starts reading its payload
# "kill -SIG -PGID": dash has no "--" and reads "-s SIG -PGID" as options
_KILL_SCRIPT = (
    "p={pid}; if kill -0 -$p 2>/dev/null; then t=-$p; else t=$p; fi; "
    "kill -TERM $t 2>/dev/null || exit 0; n=0; "
    "while kill -0 $t 2>/dev/null && [ $n -lt 5 ]; do sleep 0.1; n=$((n+1)); done; "
    "kill -KILL $t 2>/dev/null; exit 0"
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def build_script(request: ExecRequest) -> str:
    """The script the remote ``/bin/sh -s`` reads: pid, env, cwd, then the command
    (or the argv) with an empty stdin."""
    bad = [name for name in request.env if not _ENV_NAME.match(name)]
    if bad:
        raise ValueError(f"not a valid environment variable name: {bad[0]!r}")
    lines = ["echo $$"]  # the pid of the session's process group leader
    lines += [f"export {k}={shlex.quote(v)}" for k, v in request.env.items()]
    lines.append('cd -- "${HOME:-.}" 2>/dev/null')
    if request.cwd:
        lines.append(f"cd -- {shlex.quote(request.cwd)} || exit 1")
    if request.argv is not None:
        lines.append(shlex.join(request.argv) + " </dev/null")
    else:
        lines.append(f"eval {shlex.quote(request.command or '')} </dev/null")
    lines.append("exit $?")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScriptResult:
    rc: int | None
    stdout: bytes
    stderr: bytes


class _Output:
    """Hands stdout/stderr chunks to the sink as they arrive, after taking the
    wrapper's pid line off the front of stdout. Without a sink (internal scripts)
    both streams are kept."""

    def __init__(self, sink: OutputSink | None) -> None:
        self.sink = sink
        self.pid: int | None = None
        self._head = b""
        self._head_done = False
        self.stdout = bytearray()
        self.stderr = bytearray()

    def stdout_chunk(self, data: bytes) -> None:
        if not self._head_done:
            self._head += data
            if b"\n" not in self._head and len(self._head) < 32:
                return
            first, _, data = self._head.partition(b"\n")
            self._head_done = True
            if first.isdigit():
                self.pid = int(first)
            else:  # not our line (a broken /bin/sh?): it is output
                data = self._head
        self._emit(Stream.STDOUT, data)

    def stderr_chunk(self, data: bytes) -> None:
        self._emit(Stream.STDERR, data)

    def _emit(self, stream: Stream, data: bytes) -> None:
        if not data:
            return
        if self.sink is not None:
            self.sink.write(stream, data)
        elif stream is Stream.STDOUT:
            self.stdout += data
        else:
            self.stderr += data


class CommandRunner:
    """Commands of one host, over its connection (connecting when needed)."""

    def __init__(self, connection: SSHConnection) -> None:
        self._connection = connection

    def exec(
        self, request: ExecRequest, sink: OutputSink, cancel: threading.Event
    ) -> ExecResult:
        channel = self._start(build_script(request), cancel=cancel)
        try:
            return self._supervise(channel, request.timeout, _Output(sink), cancel)
        finally:
            channel.close()

    def run_script(
        self, script: str, *, timeout: float | None, payload: bytes | None = None
    ) -> ScriptResult:
        """Run an internal ``script`` (its first line must be ``echo $$``). With a
        ``payload``, the script's stdin stays open; once it prints ``READY`` the
        payload is streamed to it raw, then stdin is closed."""
        channel = self._start(script, close_stdin=payload is None)
        try:
            output = _Output(None)
            if payload is not None:
                if self._await_ready(channel, output):
                    self._send(channel, payload)
                self._close_stdin(channel)
            result = self._supervise(channel, timeout, output, threading.Event())
            return ScriptResult(
                rc=result.rc, stdout=bytes(output.stdout), stderr=bytes(output.stderr)
            )
        finally:
            channel.close()

    def _start(
        self,
        script: str,
        *,
        cancel: threading.Event | None = None,
        close_stdin: bool = True,
    ) -> paramiko.Channel:
        """Open a channel, send the bootstrap and the script. Nothing of the command
        can run before the script's end arrives, so failures here are retryable."""
        self._connection.connect()
        channel = self._connection.open_session(
            lambda chan: chan.exec_command(_BOOTSTRAP), cancel
        )
        try:
            channel.sendall(script.encode())
            if close_stdin:
                channel.shutdown_write()
        except NETWORK_ERRORS as exc:
            channel.close()
            raise ConnectError(
                f"{self._connection.where}: connection dropped before the command "
                f"started: {self._connection.cause(exc)}"
            ) from exc
        return channel

    def _await_ready(self, channel: paramiko.Channel, output: _Output) -> bool:
        """Wait until the script prints ``READY`` (True) or ends without (False)."""
        waiter = select.poll()
        waiter.register(channel.fileno(), select.POLLIN)
        while True:
            self._drain(channel, output)
            if output.stdout.startswith(READY):
                del output.stdout[: len(READY)]
                return True
            if not READY.startswith(bytes(output.stdout)):
                return False  # it says something else: it failed before reading
            if channel.eof_received or channel.exit_status_ready():
                return False
            waiter.poll(_TICK * 1000)

    def _send(self, channel: paramiko.Channel, payload: bytes) -> None:
        try:
            for start in range(0, len(payload), _SEND_SIZE):
                channel.sendall(payload[start : start + _SEND_SIZE])
        except NETWORK_ERRORS as exc:
            if not self._connection.is_open():
                self._lost(exc)
            # the script stopped reading (its outcome says why)

    def _close_stdin(self, channel: paramiko.Channel) -> None:
        try:
            channel.shutdown_write()
        except NETWORK_ERRORS as exc:
            if not self._connection.is_open():
                self._lost(exc)

    def _supervise(
        self,
        channel: paramiko.Channel,
        timeout: float | None,
        output: _Output,
        cancel: threading.Event,
    ) -> ExecResult:
        waiter = select.poll()  # poll, not select: fds may exceed 1024 on big fleets
        waiter.register(channel.fileno(), select.POLLIN)
        deadline = None if timeout is None else time.monotonic() + timeout
        exited_at: float | None = None
        while True:
            self._drain(channel, output)
            now = time.monotonic()
            if channel.exit_status_ready():  # the status arrived or the channel closed
                if channel.closed or channel.eof_received:
                    break
                exited_at = now if exited_at is None else exited_at
                if now >= exited_at + _DRAIN_GRACE:
                    break  # a background child keeps stdout open: stop listening
            if cancel.is_set():
                self._kill(channel, output.pid)
                return ExecResult(rc=None, interrupted=True)
            if deadline is not None and now >= deadline:
                self._kill(channel, output.pid)
                return ExecResult(rc=None, timed_out=True)
            wait = _TICK if deadline is None else min(_TICK, max(deadline - now, 0))
            if channel.eof_received:  # EOF leaves the fd readable: wait on the status
                channel.status_event.wait(wait)
            else:
                waiter.poll(wait * 1000)
        return self._outcome(channel, output)

    def _drain(self, channel: paramiko.Channel, output: _Output) -> None:
        try:
            while channel.recv_ready():
                output.stdout_chunk(channel.recv(_READ_SIZE))
            while channel.recv_stderr_ready():
                output.stderr_chunk(channel.recv_stderr(_READ_SIZE))
        except NETWORK_ERRORS as exc:
            self._lost(exc)

    def _outcome(self, channel: paramiko.Channel, output: _Output) -> ExecResult:
        self._drain(channel, output)
        name = self._connection.exit_signal(channel)
        number = _signal_number(name)
        if number is not None:
            return ExecResult(rc=None, signal=number)
        if channel.exit_status == -1 and not self._connection.is_open():
            self._lost(None)
        return ExecResult(rc=channel.exit_status)

    def _lost(self, exc: BaseException | None) -> NoReturn:
        raise ConnectionLostError(
            f"{self._connection.where}: connection lost while the command ran "
            f"({self._connection.cause(exc)}); its outcome is unknown"
        ) from exc

    def _kill(self, channel: paramiko.Channel, pid: int | None) -> None:
        """Kill the command's process group on the host, then stop listening."""
        if pid is not None and self._connection.is_open():
            script = build_script(ExecRequest(command=_KILL_SCRIPT.format(pid=pid)))
            try:
                self.run_script(script, timeout=5.0)
            except TransportError:
                pass  # the connection is gone: the session's processes get SIGHUP
            channel.status_event.wait(1.0)
        channel.close()


def _signal_number(name: str | None) -> int | None:
    if name is None:
        return None
    try:
        return int(signal.Signals[f"SIG{name}"])
    except KeyError:
        return None
