"""The ``runbook`` command. The only place that prints final errors and picks exit
codes; heavy modules are imported inside commands so ``runbook --version`` stays fast.

Exit codes (one table, see ``errors.ExitCode``): 0 succeeded; 1 a step failed (any
rollback completed); 2 invalid input, nothing ran; 3 a human must look (rollback failed
or the audit log stopped being writable); 4 refused, nothing changed (no-go, approval
refused, lock held, audit log unusable); 70 internal error; 130 interrupted (SIGINT);
143 terminated (SIGTERM), 129 hung up (SIGHUP).
"""

from __future__ import annotations

import os
import signal
import sys


def _interrupted_at_start_up(signum: int, frame: object) -> None:
    # Ctrl-C while Python still imports us: one line and 130, never a traceback
    os.write(2, b"interrupted\n")
    os._exit(130)


signal.signal(signal.SIGINT, _interrupted_at_start_up)

import traceback  # noqa: E402
from typing import NoReturn  # noqa: E402

import click  # noqa: E402

from ..errors import ExitCode, ParamError, RunbookError  # noqa: E402
from .app import _INVOCATION, Interrupted, cli  # noqa: E402


def main() -> None:
    # a file size limit must fail the write (EFBIG, reported), not kill the process
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    # from here on Ctrl-C is a KeyboardInterrupt: runs stop cleanly and record it
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        cli.main(prog_name="runbook", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.INVALID)
    except RunbookError as exc:
        _print_error(exc)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, Interrupted):
        click.echo("interrupted", err=True)
        _exit_now(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        sys.exit(ExitCode.FAILED)
    except Exception:
        _crash()
    sys.exit(ExitCode.OK)


def _exit_now(code: int) -> NoReturn:
    """Exit with ``code`` after an interrupt, whatever Python would make of it: it
    turns an exit that follows a KeyboardInterrupt into a death by SIGINT (-2) now
    and then; everything that had to be closed was closed on the way out."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _print_error(exc: RunbookError) -> None:
    diagnostics = getattr(exc, "diagnostics", None)
    message = str(exc)
    if diagnostics:
        from ..diagnostics import format_text

        click.echo(format_text(diagnostics), err=True)
        if isinstance(exc, ParamError) and message != "invalid params":
            click.echo(f"error: {message}", err=True)  # -e problems have no file
        errors = sum(1 for d in diagnostics if d.severity == "error")
        if errors:
            click.echo(f"{errors} error(s); nothing ran", err=True)
        return
    click.echo(f"error: {_masked(message)}", err=True)


def _masked(text: str) -> str:
    """``text`` with the run's secrets and any database password masked."""
    from ..engine.store import mask_url

    if _INVOCATION.masker is not None:
        text = _INVOCATION.masker.mask(text)
    return mask_url(text)


def _crash() -> NoReturn:
    text = _masked(traceback.format_exc())
    where = None
    try:
        from ..statedir import default_state_dir, ensure_state_dir

        state_dir = ensure_state_dir(_INVOCATION.state_dir or default_state_dir())
        where = state_dir / f"crash-{_INVOCATION.run_id or os.getpid()}.log"
        fd = os.open(
            where, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600
        )
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    except Exception:
        where = None
    click.echo(
        "internal error: this is a bug in runbook, not in your runbook. Nothing more"
        " will run. Please report it with the crash file"
        + (f": {where}" if where else " (could not write the crash file)"),
        err=True,
    )
    sys.exit(ExitCode.INTERNAL)


# register the commands
from . import records, review, runs, team  # noqa: E402, F401
