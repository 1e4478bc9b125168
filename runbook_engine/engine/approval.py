"""Manual gates: ask on the TTY, or take ``--yes`` / ``--approve STEP_ID``; without a
TTY and without either, refuse (fail closed). Every answer is audited with the
operator."""

from __future__ import annotations

import select
import sys
import threading
from typing import TYPE_CHECKING, TextIO

from ..record.events import Approval, EventSink

if TYPE_CHECKING:
    from ..spec.model import Step


class TerminalApprover:
    def __init__(
        self,
        *,
        yes: bool,
        approve: frozenset[str],
        sink: EventSink,
        operator: str,
        tty_in: TextIO | None = None,
        tty_out: TextIO | None = None,
    ) -> None:
        self.yes = yes
        self.approve = approve
        self.sink = sink
        self.operator = operator
        self.tty_in = tty_in if tty_in is not None else sys.stdin
        self.tty_out = tty_out if tty_out is not None else sys.stderr
        self._lock = threading.Lock()  # one question at a time

    def ask(
        self,
        step: Step,
        host: str,
        message: str,
        confirm: str | None,
        timeout: float | None,
    ) -> tuple[bool, str]:
        with self._lock:
            approved, answer, via = self._decide(step, message, confirm, timeout)
            self.sink.emit(
                Approval(
                    step=step.id,
                    host=host,
                    question=message,
                    answer=answer,
                    approved=approved,
                    operator=self.operator,
                    via=via,
                )
            )
            self.sink.barrier()
            return approved, f"{via}, by {self.operator}"

    def _decide(
        self, step: Step, message: str, confirm: str | None, timeout: float | None
    ) -> tuple[bool, str, str]:
        if step.id in self.approve:
            return True, "approved", "--approve"
        if self.yes:
            return True, "approved", "--yes"
        if not _is_tty(self.tty_in):
            return False, "", "no TTY (fail closed: use --yes or --approve STEP_ID)"
        if confirm is not None:
            prompt = f"\n{message}\nType {confirm!r} to approve: "
        else:
            prompt = f"\n{message} [y/N]: "
        self.tty_out.write(prompt)
        self.tty_out.flush()
        answer = _read_line(self.tty_in, timeout)
        if answer is None:
            return False, "", f"no answer within {timeout:g}s"
        answer = answer.strip()
        if confirm is not None:
            return answer == confirm, answer, "tty"
        return answer.lower() in ("y", "yes"), answer, "tty"


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (ValueError, AttributeError):
        return False


def _read_line(stream: TextIO, timeout: float | None) -> str | None:
    if timeout is not None:
        ready, _, _ = select.select([stream], [], [], timeout)
        if not ready:
            return None
    line = stream.readline()
    return line if line else ""
