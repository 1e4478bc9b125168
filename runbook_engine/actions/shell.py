"""``run:`` (shell text for ``/bin/sh -c``) and ``argv:`` (no shell)."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from ..errors import ConnectionLostError, TransportError
from ..record.events import Status
from ..spec.model import ArgvAction, RunAction
from ..transports.base import ExecRequest, Stream
from .outcome import Outcome

if TYPE_CHECKING:
    from ..spec.model import Action
    from . import ActionEnv


def run(action: Action, env: ActionEnv) -> Outcome:
    if isinstance(action, RunAction):
        command = env.renderer.text(action.command, "run")
        request = ExecRequest(
            command=command, env=env.env, cwd=env.cwd, timeout=env.timeout
        )
        display = command
    else:
        assert isinstance(action, ArgvAction)
        argv = tuple(str(env.renderer.value(a, "argv")) for a in action.argv)
        request = ExecRequest(argv=argv, env=env.env, cwd=env.cwd, timeout=env.timeout)
        display = shlex.join(argv)
    return execute(request, display, env)


def execute(request: ExecRequest, display: str, env: ActionEnv) -> Outcome:
    """Run one request on the env's transport and turn what happened into data."""
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
    if result.interrupted:
        status, message = Status.FAILED, "interrupted"
    elif result.timed_out:
        status, message = (
            Status.FAILED,
            f"timed out after {request.timeout:g}s (process group killed)",
        )
    elif result.rc == 0:
        status, message = Status.CHANGED, None
    else:
        status, message = Status.FAILED, f"exit code {result.rc}"
    return Outcome(
        status=status,
        rc=result.rc,
        stdout=stdout,
        stderr=stderr,
        message=message,
        command=display,
        timed_out=result.timed_out,
        interrupted=result.interrupted,
    )


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
