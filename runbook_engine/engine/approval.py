"""Manual gates: take ``--yes`` / ``--approve STEP_ID``, or wait for an answer, typed
on the TTY or given from anywhere with ``runbook approve RUN_ID STEP`` (a grant in
the store, looked for every ``GRANT_POLL`` seconds while the gate waits). Without a
TTY the gate waits for a grant up to the step's ``timeout``; without a TTY and
without a timeout it refuses at once (fail closed). Every answer is audited with who
gave it and how (``via``: ``tty``, ``--yes``, ``--approve``, ``remote``...).
"""

from __future__ import annotations

import math
import select
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from ..record.events import Approval, ApprovalWaiting, EventSink

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..spec.model import Step
    from .store import Grant

GRANT_POLL = 0.5  # seconds between two looks at the store for a grant
NO_TTY = (
    "no TTY (fail closed: use --yes or --approve STEP_ID, or give the step a"
    " timeout and answer it with runbook approve)"
)


@dataclass(frozen=True, slots=True)
class _Answer:
    approved: bool
    text: str
    via: str
    operator: str


class TerminalApprover:
    """``grants(step_id)`` reads the store for an answer given from elsewhere (None:
    the gate only asks the TTY, as ``plan`` does)."""

    def __init__(
        self,
        *,
        yes: bool,
        approve: frozenset[str],
        sink: EventSink,
        operator: str,
        grants: Callable[[str], Grant | None] | None = None,
        run_id: str = "",
        tty_in: TextIO | None = None,
        tty_out: TextIO | None = None,
        poll: float = GRANT_POLL,
    ) -> None:
        self.yes = yes
        self.approve = approve
        self.sink = sink
        self.operator = operator
        self.grants = grants
        self.run_id = run_id
        self.tty_in = tty_in if tty_in is not None else sys.stdin
        self.tty_out = tty_out if tty_out is not None else sys.stderr
        self.poll = poll
        self._lock = threading.Lock()  # one question at a time

    def ask(
        self,
        step: Step,
        host: str,
        message: str,
        confirm: str | None,
        timeout: float | None,
        cancel: threading.Event | None = None,
    ) -> tuple[bool, str]:
        with self._lock:
            answer = self._decide(step, host, message, confirm, timeout, cancel)
            self.sink.emit(
                Approval(
                    step=step.id,
                    host=host,
                    question=message,
                    answer=answer.text,
                    approved=answer.approved,
                    operator=answer.operator,
                    via=answer.via,
                )
            )
            self.sink.barrier()
            return answer.approved, f"{answer.via}, by {answer.operator}"

    def _decide(
        self,
        step: Step,
        host: str,
        message: str,
        confirm: str | None,
        timeout: float | None,
        cancel: threading.Event | None,
    ) -> _Answer:
        if step.id in self.approve:
            return _Answer(True, "approved", "--approve", self.operator)
        if self.yes:
            return _Answer(True, "approved", "--yes", self.operator)
        tty = _is_tty(self.tty_in)
        if not tty and (timeout is None or self.grants is None):
            return _Answer(False, "", NO_TTY, self.operator)
        self.sink.emit(
            ApprovalWaiting(
                step=step.id,
                host=host,
                question=message,
                confirm=confirm,
                timeout_ms=None if timeout is None else int(timeout * 1000),
                tty=tty,
            )
        )
        self.sink.barrier()  # durable before anyone can answer it
        if tty:
            if confirm is not None:
                prompt = f"\n{message}\nType {confirm!r} to approve: "
            else:
                prompt = f"\n{message} [y/N]: "
            self.tty_out.write(prompt)
            self.tty_out.flush()
        return self._wait(step, confirm, timeout, tty=tty, cancel=cancel)

    def _wait(
        self,
        step: Step,
        confirm: str | None,
        timeout: float | None,
        *,
        tty: bool,
        cancel: threading.Event | None,
    ) -> _Answer:
        """The first answer: a grant in the store, a line on the TTY, the timeout."""
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        while True:
            grant = self.grants(step.id) if self.grants is not None else None
            if grant is not None:
                return _granted(grant, confirm)
            if cancel is not None and cancel.is_set():
                return _Answer(False, "", "interrupted while waiting", self.operator)
            left = deadline - time.monotonic()
            if left <= 0:
                return _Answer(
                    False, "", f"no answer within {timeout:g}s", self.operator
                )
            pause = min(self.poll, left)
            if tty:
                line = _read_line(self.tty_in, pause)
                if line is not None:
                    return self._typed(line, confirm)
            elif cancel is not None:
                cancel.wait(pause)
            else:
                time.sleep(pause)

    def _typed(self, line: str, confirm: str | None) -> _Answer:
        answer = line.strip()
        if confirm is not None:
            return _Answer(answer == confirm, answer, "tty", self.operator)
        return _Answer(answer.lower() in ("y", "yes"), answer, "tty", self.operator)


def _granted(grant: Grant, confirm: str | None) -> _Answer:
    """A gate that asks for a word is approved only by a grant that typed it."""
    if grant.approved:
        approved = confirm is None or grant.confirm == confirm
        text = grant.confirm if grant.confirm is not None else "approved"
    else:
        approved, text = False, "denied"
    return _Answer(approved, text, "remote", grant.operator)


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (ValueError, AttributeError):
        return False


def _read_line(stream: TextIO, timeout: float) -> str | None:
    """A line typed within ``timeout`` seconds ("" at end of input), else None."""
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        return None
    line = stream.readline()
    return line if line else ""
