"""Human progress on stderr: live output prefixed by host and step, one line per
finished step, the go/no-go table, rollback, and a summary.

Colour only on a TTY and never with ``NO_COLOR``. Output from commands has control and
escape sequences neutralised before it reaches the terminal.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

from ..transports.base import Stream
from ..units import format_duration
from .events import (
    Approval,
    ApprovalWaiting,
    BatchStarted,
    Event,
    GoNoGo,
    HostConnected,
    Notice,
    RollbackFinished,
    RollbackStarted,
    RunFinished,
    RunStarted,
    Status,
    StepFinished,
    StepRetry,
    StepStarted,
    UndoFinished,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..transports.output import LiveCallback

# C0 controls except \t and \n, DEL, and C1 controls (CSI/OSC without ESC)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_COLOURS = {
    "ok": "32",
    "changed": "33",
    "skipped": "36",
    "failed": "31",
    "unknown": "35",
    "succeeded": "32",
    "rolled_back": "33",
    "rollback_failed": "31",
    "no_go": "31",
    "interrupted": "35",
    "go": "32",
    "no-go": "31",
}
FAIL_TAIL_LINES = 10
FAIL_COMMAND_LINES = 6  # of a failed step's command; the audit log has all of it
# what the operator can do next, by how the run ended
_RESUME = "continue with `runbook resume {id}` or undo with `runbook rollback {id}`"
_NEXT = {
    "failed": _RESUME,
    "interrupted": _RESUME,
    "rollback_failed": "see `runbook audit show {id}`; fix by hand what is listed",
    "no_go": "nothing was changed; `runbook audit show {id}` has the details",
}
# how an approval was answered when a person answered it (else nobody refused)
_ANSWERED_BY_SOMEONE = frozenset({"tty", "--yes", "--approve", "remote"})
# a run that stopped while undoing is never resumed (that would go forward again)
_FINISH_ROLLBACK = (
    "finish the rollback with `runbook rollback {id}` (undos already done are not"
    " done again)"
)


def _one_line(text: str) -> str:
    """``neutralise``, and a newline shown as ``\\n``: a name cannot forge a line."""
    return neutralise(text).replace("\n", "\\n")


def neutralise(text: str) -> str:
    """Make command output safe to print: ESC, OSC 52, clears... become visible text."""
    return _CONTROL.sub(
        lambda m: f"\\x{ord(m.group()):02x}", text.replace("\r\n", "\n")
    )


class Console:
    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        verbosity: int = 0,  # -1 quiet, 0 normal, 1 commands, 2 transport detail
        colour: bool | None = None,  # None: on a TTY unless NO_COLOR is set
        is_tty: Callable[[], bool] | None = None,
    ) -> None:
        self.out = stream or sys.stderr
        self.verbosity = verbosity
        tty = is_tty() if is_tty else self.out.isatty()
        self.colour = (
            colour if colour is not None else (tty and "NO_COLOR" not in os.environ)
        )
        self._lock = threading.Lock()
        self._streamed: set[tuple[str, str]] = set()
        # on a TTY, a live line names what is running and for how long
        self._live_line = tty and verbosity >= 0
        self._running: dict[tuple[str, str], float] = {}
        self._status_shown = False
        self._closed = False
        self._ticker: threading.Thread | None = None
        self.run_id: str | None = None
        self._started: RunStarted | None = None
        self._rolling_back = False

    # -- output of commands ------------------------------------------------------------

    def live(self, host: str, step: str) -> LiveCallback | None:
        if self.verbosity < 0:
            return None
        prefix = self._dim(f"{host} | {step} | ")
        err_prefix = self._dim(f"{host} | {step} ! ")

        def write(stream: Stream, text: str) -> None:
            self._streamed.add((host, step))
            lead = prefix if stream is Stream.STDOUT else err_prefix
            body = neutralise(text)
            if body.endswith("\n"):
                body = body[:-1]
            self._write(lead + body.replace("\n", "\n" + lead) + "\n")

        return write

    def announce(self, host: str, step: str, command: str) -> None:
        """With -v, each command as it starts (masked)."""
        if self.verbosity >= 1:
            first, *more = neutralise(command).strip().splitlines() or [""]
            extra = f" (+{len(more)} lines)" if more else ""
            self._write(self._dim(f"{host} | {step} $ ") + first + extra + "\n")

    # -- events ------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        handler = getattr(self, f"_on_{type(event).__name__}", None)
        if handler is not None:
            handler(event)

    def barrier(self) -> None:
        pass

    def _on_RunStarted(self, event: RunStarted) -> None:
        self._started = event
        if self.verbosity >= 0:
            hosts = ", ".join(event.hosts)
            run = f", run {self.run_id}" if self.run_id else ""
            self._write(
                self._bold(f"runbook {event.runbook_name}")
                + f" ({event.mode}{run}) on {hosts}\n"
            )

    def _on_BatchStarted(self, event: BatchStarted) -> None:
        if self.verbosity < 0:
            return
        if event.plan and len(event.plan) > 1:
            plan = "  ".join(
                f"[{i}] {', '.join(b)}" for i, b in enumerate(event.plan, 1)
            )
            self._write(f"batch plan: {plan}\n")
        if len(event.plan) != 1:
            self._write(
                self._bold(f"-- batch {event.batch}: {', '.join(event.hosts)}") + "\n"
            )

    def _on_StepFinished(self, event: StepFinished) -> None:
        self._done(event.host, event.step)
        failed = event.status in (Status.FAILED, Status.UNKNOWN)
        if self.verbosity < 0 and not failed:
            return
        status = event.status.value
        if event.attempt > 1:
            status += f" (retried {event.attempt - 1})"
        line = (
            f"{self._dim(event.host)} {event.step:<24}"
            f" {self._paint(event.status.value, status)}"
            f" {self._dim(format_duration(event.duration_ms / 1000))}"
        )
        if event.message and (
            failed or self.verbosity > 0 or event.status is Status.SKIPPED
        ):
            line += f"  {neutralise(event.message)}"
        self._write(line + "\n")
        if failed:
            self._failure_detail(event)

    def _failure_detail(self, event: StepFinished) -> None:
        if event.command:
            lines = neutralise(event.command).rstrip("\n").split("\n")
            shown = "\n             ".join(lines[:FAIL_COMMAND_LINES])
            more = len(lines) - FAIL_COMMAND_LINES
            if more > 0:
                shown += f"\n             ... ({more} more lines: `runbook audit show"
                shown += f" {self.run_id or 'RUN_ID'} --step {event.step} --json`)"
            self._write(f"    command: {shown}\n")
        if event.rc is not None:
            self._write(f"    exit code: {event.rc}\n")
        if (event.host, event.step) in self._streamed:
            self._write("    output: (already shown above)\n")
            return
        tail = (
            event.stdout_tail
            + ("\n" if event.stdout_tail and event.stderr_tail else "")
            + event.stderr_tail
        )
        lines = tail.splitlines()[-FAIL_TAIL_LINES:]
        if lines:
            self._write(f"    last {len(lines)} lines of output:\n")
            for text in lines:
                self._write(f"      {neutralise(text)}\n")

    def _on_StepRetry(self, event: StepRetry) -> None:
        if self.verbosity >= 0:
            self._write(
                f"{self._dim(event.host)} {event.step:<24}"
                f" {self._paint('changed', 'retry')}"
                f" attempt {event.attempt} failed ({neutralise(event.cause)}); next in"
                f" {format_duration(event.next_delay_ms / 1000)}\n"
            )

    def _on_GoNoGo(self, event: GoNoGo) -> None:
        self._write(self._bold("go / no-go") + "\n")
        for row in event.checks:
            mark = {"ok": "GO", "changed": "GO", "skipped": "SKIPPED"}.get(
                row.status, "NO-GO"
            )
            colour_key = {"GO": "go", "SKIPPED": "skipped"}.get(mark, "no-go")
            message = f"  {neutralise(row.message)}" if row.message else ""
            self._write(
                f"  {self._paint(colour_key, f'{mark:<7}')} {row.host:<10}"
                f" {row.name}{message}\n"
            )
        verdict = "GO" if event.go else "NO-GO"
        self._write(f"  => {self._paint('go' if event.go else 'no-go', verdict)}\n")

    def _on_RollbackStarted(self, event: RollbackStarted) -> None:
        self._rolling_back = True
        self._write(
            self._paint("failed", f"rolling back {', '.join(event.hosts) or 'nothing'}")
            + f": {neutralise(event.reason)}\n"
        )

    def _on_UndoFinished(self, event: UndoFinished) -> None:
        status = self._paint(event.status.value, f"undo {event.status.value}")
        message = (
            f"  {neutralise(event.message)}"
            if event.message and event.status is Status.FAILED
            else ""
        )
        self._write(
            f"{self._dim(event.host)} {event.step:<24} {status}"
            f" {self._dim(format_duration(event.duration_ms / 1000))}{message}\n"
        )

    def _on_RollbackFinished(self, event: RollbackFinished) -> None:
        if event.skipped:
            self._write("rollback skipped (--no-rollback)\n")
            return
        if event.ok:
            self._write(self._paint("ok", "rollback complete") + "\n")
            return
        self._write(
            self._paint("failed", "ROLLBACK INCOMPLETE: a human must look at:") + "\n"
        )
        for item in event.needs_attention:
            self._write(f"  {item.host}: step {item.step}: {neutralise(item.what)}\n")

    def _on_Approval(self, event: Approval) -> None:
        if event.via not in _ANSWERED_BY_SOMEONE:  # no TTY, no answer in time...
            self._write(f"{event.host} {event.step}: not approved: {event.via}\n")
            return
        verdict = "approved" if event.approved else "refused"
        who = _one_line(event.operator)  # from another machine: data, one line
        self._write(f"{event.host} {event.step}: {verdict} by {who} ({event.via})\n")

    def _on_ApprovalWaiting(self, event: ApprovalWaiting) -> None:
        word = f" --confirm {shlex.quote(event.confirm)}" if event.confirm else ""
        run = self.run_id or "RUN_ID"
        within = (
            f" (up to {format_duration(event.timeout_ms / 1000)})"
            if event.timeout_ms is not None
            else ""
        )
        here = "answer here or, from anywhere" if event.tty else "from anywhere"
        self._write(
            f"{event.host} {event.step}: waiting for approval{within}; {here}:"
            f" runbook approve {run} {event.step}{word} (or --deny)\n"
        )

    def _on_HostConnected(self, event: HostConnected) -> None:
        if self.verbosity < 2:
            return
        facts = dict(event.facts)
        via = f" via {facts['via']}" if facts.get("via") else ""
        key = facts.get("host_key", "")
        status = facts.get("host_key_status", "")
        self._write(
            self._dim(f"{event.host} | connected ")
            + f"{facts.get('user', '')}@{facts.get('address', '')}{via}"
            + (
                f", host key {facts.get('host_key_type', '')} {key} ({status})"
                * bool(key)
            )
            + "\n"
        )

    def _on_Notice(self, event: Notice) -> None:
        if event.kind == "secret.absent" and self.verbosity < 1:
            return  # an optional secret that is not set: expected, audited, -v shows it
        if event.kind == "rollback.skipped":
            return  # audited; the rollback line already says it
        if self.verbosity >= 0 or event.kind == "warning":
            self._write(f"note: {neutralise(event.message)}\n")

    def _on_RunFinished(self, event: RunFinished) -> None:
        status = event.status.value
        hosts = "  ".join(f"{h}={s}" for h, s in event.hosts.items())
        self._write(
            self._bold("result: ")
            + self._paint(status, status)
            + f" in {format_duration(event.duration_ms / 1000)}  {hosts}\n"
        )
        if event.message and event.status.value != "succeeded":
            self._write(f"  {neutralise(event.message)}\n")
        hint = self._next_step(event.status.value)
        if hint and self.run_id:
            self._write(f"  run {self.run_id}: {hint}\n")

    def _next_step(self, status: str) -> str | None:
        """What the operator can do next (None: nothing to say)."""
        run_id, started = self.run_id, self._started
        if status not in ("failed", "interrupted"):
            hint = _NEXT.get(status)
            return hint.format(id=run_id) if hint else None
        mode = started.mode if started else "run"
        if mode == "rollback" and started and started.resumed_from:
            return _FINISH_ROLLBACK.format(id=started.resumed_from)
        if mode in ("check", "plan"):
            return None  # nothing was changed
        if mode == "drill":
            return f"undo what it did with `runbook rollback {run_id}`"
        if self._rolling_back:
            return _FINISH_ROLLBACK.format(id=run_id)
        return _RESUME.format(id=run_id)

    # -- plumbing ----------------------------------------------------------------------

    def message(self, text: str) -> None:
        self._write(text + "\n")

    def _write(self, text: str) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                if self._status_shown:
                    self.out.write("\r\x1b[K")
                    self._status_shown = False
                self.out.write(text)
                self.out.flush()
            except (OSError, ValueError):
                # the terminal went away (| head, a dropped session): the run goes
                # on and the audit log still records everything
                self._closed = True

    def _on_StepStarted(self, event: StepStarted) -> None:
        # an approval gate waits on the operator: its prompt must not be overwritten
        if not self._live_line or event.action == "approve":
            return
        with self._lock:
            self._running[(event.host, event.step)] = time.monotonic()
            if self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, daemon=True)
                self._ticker.start()

    def _tick(self) -> None:
        while True:
            time.sleep(0.5)
            with self._lock:
                now = time.monotonic()
                slow = [(k, now - t) for k, t in self._running.items() if now - t >= 1]
                if not slow:
                    continue
                (host, step), elapsed = max(slow, key=lambda item: item[1])
                more = f" (+{len(slow) - 1} more)" if len(slow) > 1 else ""
                line = f"running {host} {step} {format_duration(elapsed)}{more}"
                if self._closed:
                    return
                try:
                    self.out.write("\r\x1b[K" + self._dim(line[:120]))
                    self.out.flush()
                except (OSError, ValueError):
                    self._closed = True
                    return
                self._status_shown = True

    def _done(self, host: str, step: str) -> None:
        with self._lock:
            self._running.pop((host, step), None)

    def _paint(self, key: str, text: str) -> str:
        code = _COLOURS.get(key)
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and code else text

    def _dim(self, text: str) -> str:
        return f"\x1b[2m{text}\x1b[0m" if self.colour else text

    def _bold(self, text: str) -> str:
        return f"\x1b[1m{text}\x1b[0m" if self.colour else text
