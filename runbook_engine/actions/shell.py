"""``run:`` (shell text for ``/bin/sh -c``) and ``argv:`` (no shell)."""

from __future__ import annotations

import shlex
import signal
from typing import TYPE_CHECKING

from ..errors import ConnectionLostError, TransportError
from ..record.events import Status
from ..spec.model import ArgvAction, RunAction
from ..transports.base import ExecRequest, Stream
from .outcome import Outcome

if TYPE_CHECKING:
    from ..spec.model import Action
    from . import ActionEnv


MAX_COMMAND_BYTES = 128 * 1024  # Linux's limit for one argument (MAX_ARG_STRLEN)


def run(action: Action, env: ActionEnv) -> Outcome:
    if isinstance(action, RunAction):
        command = env.renderer.text(action.command, "run")
        request = ExecRequest(
            command=command, env=env.env, cwd=env.cwd, timeout=env.timeout
        )
        display, size = command, len(command.encode())
    else:
        assert isinstance(action, ArgvAction)
        argv = tuple(env.renderer.text_of(a, "argv") for a in action.argv)
        request = ExecRequest(argv=argv, env=env.env, cwd=env.cwd, timeout=env.timeout)
        display, size = shlex.join(argv), max(len(a.encode()) for a in argv)
    if size > MAX_COMMAND_BYTES:
        return Outcome(
            status=Status.FAILED,
            message=f"the rendered command is {size} bytes, over the limit of"
            f" {MAX_COMMAND_BYTES} (128 KiB): pass large data in a file or through"
            " env, not on the command line",
            command=display,
            retryable=False,
        )
    return execute(request, display, env)


def execute(request: ExecRequest, display: str, env: ActionEnv) -> Outcome:
    """Run one request on the env's transport and turn what happened into data."""
    env.announce(display)
    try:
        env.transport.connect()
        result = env.transport.exec(request, env.output, env.cancel)
    except ConnectionLostError as exc:
        return _closed(
            env, display, Status.UNKNOWN, f"outcome unknown: {exc}", lost=True
        )
    except TransportError as exc:
        return _closed(env, display, Status.FAILED, str(exc), retryable=exc.retryable)
    except OSError as exc:  # e.g. cwd missing, program not found for argv
        return _closed(
            env, display, Status.FAILED, f"cannot start: {exc.strerror or exc}"
        )
    finally:
        env.output.close()
    stdout, stderr = env.output.tail(Stream.STDOUT), env.output.tail(Stream.STDERR)
    rc = result.rc
    if result.interrupted:
        status, message = Status.FAILED, "interrupted"
    elif result.timed_out:
        status, message = Status.FAILED, _timed_out(request.timeout)
    elif rc == 0:
        status, message = Status.CHANGED, None
    elif result.signal is not None:  # killed by a signal, not by us
        status, message, rc = Status.FAILED, _killed(result.signal), None
    elif rc == -1:
        status, message = (
            Status.FAILED,
            "the server closed the session without an exit status",
        )
    else:
        status, message = Status.FAILED, _exit_code(rc)
    return Outcome(
        status=status,
        rc=rc,
        stdout=stdout,
        stderr=stderr,
        message=message,
        command=display,
        timed_out=result.timed_out,
        interrupted=result.interrupted,
    )


def _timed_out(timeout: float | None) -> str:
    return (
        f"timed out after {timeout or 0:g}s: its whole process group"
        " was killed (SIGTERM, then SIGKILL)"
    )


def _killed(number: int) -> str:
    return f"killed by {_signal_name(number)} (signal {number}), not by the timeout"


def _exit_code(rc: int | None) -> str:
    """``exit code N``; a shell reports a command killed by signal S as 128 + S."""
    if rc is not None and 128 < rc <= 128 + 64:
        return (
            f"exit code {rc} (128 + {rc - 128}: the command was probably killed by"
            f" {_signal_name(rc - 128)}, not by the timeout)"
        )
    return f"exit code {rc}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _closed(
    env: ActionEnv,
    display: str,
    status: Status,
    message: str,
    *,
    lost: bool = False,
    retryable: bool = True,
) -> Outcome:
    return Outcome(
        status=status,
        message=message,
        command=display,
        stdout=env.output.tail(Stream.STDOUT),
        stderr=env.output.tail(Stream.STDERR),
        connection_lost=lost,
        retryable=retryable,
    )
