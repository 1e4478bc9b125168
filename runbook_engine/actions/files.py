"""``copy:`` a local file and ``template:`` a rendered one to the host, atomically
(temp file beside ``dest``, then rename). ``changed`` only when content or mode differ.
The outcome's ``transfer`` says how the file travelled (``sftp``, ``exec`` or
``local``); the step message says it too, which the console shows with ``-v``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConnectionLostError, TransportError
from ..record.events import Status
from ..spec.model import CopyAction, TemplateAction
from .outcome import Outcome

if TYPE_CHECKING:
    from ..spec.model import Action
    from . import ActionEnv


def run(action: Action, env: ActionEnv) -> Outcome:
    assert isinstance(action, CopyAction | TemplateAction)
    src = env.base_dir / env.renderer.text(action.src, f"{action.kind}.src")
    dest = env.renderer.text(action.dest, f"{action.kind}.dest")
    display = f"{action.kind} {src} -> {dest}"
    try:
        data = src.read_bytes()
    except OSError as exc:
        return Outcome(
            status=Status.FAILED,
            message=f"cannot read {src}: {exc.strerror}",
            command=display,
        )
    if isinstance(action, TemplateAction):
        text = data.decode("utf-8", errors="replace")
        data = env.renderer.text(text, f"{action.kind} {src.name}").encode("utf-8")
    mode = None if action.mode is None else int(action.mode, 8)
    env.announce(display)
    method: str | None = None
    try:
        files = env.transport.file_transfer()
        method = files.method
        result = files.write_file(dest, data, mode)
    except (TransportError, OSError) as exc:
        return _failure(exc, dest, display, method)
    done = "written" if result.changed else "already up to date"
    return Outcome(
        status=Status.CHANGED if result.changed else Status.OK,
        command=display,
        message=f"{done} (transfer: {result.method})",
        transfer=result.method,
    )


def _failure(
    exc: TransportError | OSError, dest: str, display: str, method: str | None
) -> Outcome:
    if isinstance(exc, ConnectionLostError):
        return Outcome(
            status=Status.UNKNOWN,
            message=f"outcome unknown: {exc}",
            command=display,
            connection_lost=True,
            transfer=method,
        )
    if isinstance(exc, TransportError):
        return Outcome(
            status=Status.FAILED,
            message=str(exc),
            command=display,
            retryable=exc.retryable,
            transfer=method,
        )
    return Outcome(
        status=Status.FAILED,
        message=f"cannot write {dest}: {exc.strerror or exc}",
        command=display,
        transfer=method,
    )
