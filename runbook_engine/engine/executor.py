"""The executor: locks -> preconditions (go / no-go) -> batches of steps and verify
-> rollback on failure -> finally, and the drill's comparison when one was asked for.

Hosts run in lockstep, one step at a time across the hosts of a batch (``Fanout``),
so ``run_once``, ``max_fail_percentage`` and the audit barrier stay simple. What a
rollback undoes and in which order is the saga's (``saga.py``); what a drill
compares is ``drill.py``'s. This module keeps the main path and what a failure means.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import AuditError, NoGoError
from ..record.events import (
    BatchStarted,
    GoNoGo,
    Notice,
    RunFinished,
    RunStatus,
    Status,
)
from ..record.results import CheckRow
from ..spec.model import OnFailure, Phase
from .drill import drill_report
from .fanout import Fanout
from .saga import RollbackDone, Saga, changed_hosts

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..record.events import DrillReport, EventSink
    from ..record.results import Attention, StepResult, UndoDone
    from ..spec.model import Runbook, Step
    from .hosts import HostState
    from .stepper import Stepper


class Terminated(BaseException):
    """SIGTERM or SIGHUP, raised in the main thread by the CLI's signal handler."""

    def __init__(self, signal_name: str = "SIGTERM") -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    forks: int = 20
    start_at: str | None = None
    fail_at: str | None = None  # drills: inject a failure right after this step
    allow_trivial: bool = False  # drills: one that proves nothing may still pass
    no_rollback: bool = False
    rollback_scope: str = "all"  # all | failed
    check_only: bool = False  # `runbook check`: preconditions only
    rollback_only: bool = False  # `runbook rollback RUN_ID`: undo what a run completed
    skip: frozenset[tuple[str, str]] = frozenset()  # (host, step) done in a resumed run


@dataclass(slots=True, kw_only=True)
class RunReport:
    """How a run ended, for the CLI (exit code, summary) and drills."""

    status: RunStatus
    duration: float
    hosts: dict[str, str]
    checks: list[CheckRow] = field(default_factory=list)
    needs_attention: list[Attention] = field(default_factory=list)
    message: str | None = None
    interrupted_by: str | None = None  # "SIGINT" | "SIGTERM" | "SIGHUP"
    failure_at: float | None = None  # monotonic time of the first failure (drills)
    rollback_done_at: float | None = None
    audit_failed: bool = False  # the audit log stopped being writable mid-run
    undos: list[UndoDone] = field(default_factory=list)
    drill: DrillReport | None = None


@dataclass(frozen=True, slots=True)
class BatchEnd:
    """Why a batch stopped: ``stop`` (None: it ran to the end), ``abort`` (stop
    without rollback: ``on_failure: abort``), ``continued`` (a step failed under
    ``on_failure: continue``)."""

    stop: str | None = None
    abort: bool = False
    continued: bool = False


class Executor:
    def __init__(
        self,
        runbook: Runbook,
        hosts: Sequence[HostState],
        *,
        stepper: Stepper,
        sink: EventSink,
        options: RunOptions,
        acquire_locks: Callable[[], None] = lambda: None,
        release_locks: Callable[[], None] = lambda: None,
    ) -> None:
        self.runbook = runbook
        self.hosts = list(hosts)
        self.sink = sink
        self.options = options
        self.acquire_locks = acquire_locks
        self.release_locks = release_locks
        self.fanout = Fanout(
            stepper=stepper,
            sink=sink,
            workers=min(options.forks, len(self.hosts)),
            skip=options.skip,
        )
        self.saga = Saga(
            runbook,
            fanout=self.fanout,
            stepper=stepper,
            sink=sink,
            scope=options.rollback_scope,
        )
        self.report = RunReport(status=RunStatus.SUCCEEDED, duration=0.0, hosts={})
        self._main_started = False
        self._refused = False  # an approval was refused
        self._checked: list[StepResult] = []  # the preconditions' results (drills)

    # -- the run ----------------------------------------------------------------------

    def execute(self) -> RunReport:
        began = time.monotonic()
        try:
            self.report.status = self._guarded()
        except AuditError as exc:
            # no action without a record: start nothing more, say so, exit 3
            self.report.status = RunStatus.FAILED
            self.report.audit_failed = True
            self.report.message = str(exc)
        finally:
            self.fanout.close()
            self.report.duration = time.monotonic() - began
            self.report.hosts = {h.name: h.status for h in self.hosts}
            self.sink.emit(
                RunFinished(
                    status=self.report.status,
                    duration_ms=int(self.report.duration * 1000),
                    hosts=self.report.hosts,
                    message=self.report.message,
                )
            )
            try:
                self.sink.barrier()
            except AuditError as exc:
                self.report.audit_failed = True
                self.report.message = str(exc)
        return self.report

    def _guarded(self) -> RunStatus:
        """Locks taken, everything run, locks released however the run ends."""
        try:
            return self._locked()
        finally:
            self.release_locks()

    def _locked(self) -> RunStatus:
        try:
            self.acquire_locks()
        except NoGoError as exc:
            self.report.message = str(exc)
            return RunStatus.NO_GO
        except (KeyboardInterrupt, Terminated) as exc:
            return self._interrupted(exc)
        status = RunStatus.FAILED
        try:
            try:
                status = self._phases()
            except (KeyboardInterrupt, Terminated) as exc:
                status = self._interrupted(exc)
            if self._main_started:
                self.saga.run_finally(self.hosts)
            if self.options.fail_at is not None and self._main_started:
                self._drill(status)
        except (KeyboardInterrupt, Terminated) as exc:
            # a second Ctrl-C during `finally`: skip the rest, still record it
            status = self._interrupted(exc)
            self.report.message = "interrupted again: finally steps skipped"
        return status

    def _interrupted(self, exc: BaseException) -> RunStatus:
        self.fanout.cancel.set()
        self.report.interrupted_by = (
            exc.signal_name if isinstance(exc, Terminated) else "SIGINT"
        )
        return RunStatus.INTERRUPTED

    def _phases(self) -> RunStatus:
        if self.options.rollback_only:
            hosts = [h for h in self.hosts if h.saga]
            return self._rollback(hosts, "rollback requested for a previous run")
        if not self._preconditions():
            return RunStatus.NO_GO
        if self.options.check_only:
            return RunStatus.SUCCEEDED
        self._main_started = True
        return self._main()

    # -- go / no-go --------------------------------------------------------------------

    def _preconditions(self) -> bool:
        if not self.runbook.steps_of(Phase.PRECONDITIONS):
            return True
        rows, self._checked = self._check_rows()
        go = all(row.go for row in rows)
        self.report.checks = rows
        self.sink.emit(GoNoGo(go=go, checks=rows))
        if not go:
            self.report.message = "no-go: a precondition failed, nothing was changed"
        return go

    def _check_rows(self) -> tuple[list[CheckRow], list[StepResult]]:
        rows: list[CheckRow] = []
        results: list[StepResult] = []
        for step in self.runbook.steps_of(Phase.PRECONDITIONS):
            # every check runs, so the table shows all failures, not just the first
            for result in self.fanout.step(step, self.hosts):
                results.append(result)
                rows.append(
                    CheckRow(
                        step=step.id,
                        name=step.title,
                        host=result.host,
                        status=result.status.value,
                        message=_check_message(result),
                    )
                )
        return rows, results

    # -- steps in batches --------------------------------------------------------------

    def _main(self) -> RunStatus:
        batches = plan_batches(self.hosts, self.runbook.serial)
        body = self._from_start_at(
            [*self.runbook.steps_of(Phase.STEPS), *self.runbook.steps_of(Phase.VERIFY)]
        )
        end = BatchEnd()
        rollback_hosts: list[HostState] = []
        continued = False
        for number, batch in enumerate(batches, start=1):
            if number > 1:
                gate_failed = self._gate(batches[number - 2])
                if gate_failed:
                    end, rollback_hosts = BatchEnd(stop=gate_failed), self._changed()
                    break
            self._announce(number, batch, batches)
            end = self._run_batch(batch, body)
            continued = continued or end.continued
            if end.abort:
                self.report.message = end.stop
                return RunStatus.FAILED
            if end.stop:
                break
        return self._after_batches(end.stop, rollback_hosts, continued)

    def _announce(
        self, number: int, batch: list[HostState], batches: list[list[HostState]]
    ) -> None:
        self.sink.emit(
            BatchStarted(
                batch=number,
                hosts=[h.name for h in batch],
                plan=[[h.name for h in b] for b in batches] if number == 1 else [],
            )
        )
        for host in batch:
            host.started = True

    def _after_batches(
        self, stop: str | None, rollback_hosts: list[HostState], continued: bool
    ) -> RunStatus:
        failed = [h for h in self.hosts if h.failed]
        if stop is None and failed:
            # within max_fail_percentage: the run went on; roll back the failed hosts
            stop, rollback_hosts = f"{len(failed)} host(s) failed", failed
        elif stop is not None and not rollback_hosts:
            rollback_hosts = self.saga.hosts_in_scope(self.hosts)
        if stop is None:
            if continued:
                self.report.message = "a step failed with on_failure: continue"
                return RunStatus.FAILED
            return RunStatus.SUCCEEDED
        self.report.message = stop
        if self._refused and not any(h.changed for h in self.hosts):
            self.report.message = f"{stop}: approval refused, nothing was changed"
            return RunStatus.NO_GO
        return self._rollback(rollback_hosts, stop)

    def _from_start_at(self, body: list[Step]) -> list[Step]:
        start = self.options.start_at
        if start is None:
            return body
        ids = [s.id for s in body]
        return body[ids.index(start) :] if start in ids else body

    def _run_batch(self, batch: list[HostState], body: list[Step]) -> BatchEnd:
        continued = False
        for step in body:
            targets = [h for h in batch if not h.failed]
            if not targets:
                break
            for result in self.fanout.step(step, targets):
                verdict = self._judge_failure(step, result)
                continued = continued or verdict == "continued"
                if verdict == "abort":
                    why = (
                        f"step {step.id!r} failed on {result.host} (on_failure: abort)"
                    )
                    return BatchEnd(stop=why, abort=True, continued=continued)
            if self._over_failure_budget():
                return BatchEnd(stop=self._failure_summary(step), continued=continued)
            if self.options.fail_at == step.id:
                return BatchEnd(stop=self._inject_failure(step), continued=continued)
        return BatchEnd(continued=continued)

    def _judge_failure(self, step: Step, result: StepResult) -> str | None:
        """What one host's result means: None (fine or ignored), "continued",
        "failed" (the host is out) or "abort"."""
        if result.ok or result.status is Status.SKIPPED or step.ignore_errors:
            return None
        policy = step.on_failure or self.runbook.on_failure
        if policy is OnFailure.CONTINUE:
            return "continued"
        self._host(result.host).failed = True
        self._mark_failure()
        if step.action.kind == "approve":
            self._refused = True
        return "abort" if policy is OnFailure.ABORT else "failed"

    def _inject_failure(self, step: Step) -> str:
        self._mark_failure()
        self.sink.emit(
            Notice(
                kind="drill.injected",
                message=f"failure injected after step {step.id!r}",
            )
        )
        return f"drill: failure injected after step {step.id!r}"

    def _mark_failure(self) -> None:
        if self.report.failure_at is None:
            self.report.failure_at = time.monotonic()

    def _over_failure_budget(self) -> bool:
        failed = sum(1 for h in self.hosts if h.failed)
        return (
            failed > 0
            and failed * 100 / len(self.hosts) > self.runbook.max_fail_percentage
        )

    def _failure_summary(self, step: Step) -> str:
        failed = [h.name for h in self.hosts if h.failed]
        return f"step {step.id!r} failed on {', '.join(failed)}"

    def _gate(self, previous: list[HostState]) -> str | None:
        for step in self.runbook.steps_of(Phase.BATCH_GATE):
            healthy = [h for h in previous if not h.failed] or previous
            for result in self.fanout.step(step, healthy):
                if not result.ok:
                    self._mark_failure()
                    why = result.message or result.status
                    return f"batch gate {step.id!r} failed on {result.host}: {why}"
        return None

    def _changed(self) -> list[HostState]:
        return changed_hosts(self.hosts)

    def _host(self, name: str) -> HostState:
        return next(h for h in self.hosts if h.name == name)

    # -- rollback and drills -----------------------------------------------------------

    def _rollback(self, hosts: list[HostState], reason: str) -> RunStatus:
        if self.options.no_rollback:
            return self.saga.skip().status
        done: RollbackDone = self.saga.roll_back(hosts, reason)
        self.report.rollback_done_at = done.done_at
        self.report.needs_attention = done.attention
        self.report.undos = done.undos
        return done.status

    def _drill(self, status: RunStatus) -> None:
        """Run the checks again and compare with what they said before the run."""
        rows, results = self._check_rows()
        recovery = None
        if self.report.failure_at is not None and self.report.rollback_done_at:
            recovery = int(
                (self.report.rollback_done_at - self.report.failure_at) * 1000
            )
        self.report.drill = drill_report(
            self.runbook,
            self.hosts,
            fail_at=self.options.fail_at or "",
            status=status,
            failure=self.report.message,
            rows=(self.report.checks, rows),
            results=(self._checked, results),
            undos=self.report.undos,
            attention=self.report.needs_attention,
            recovery_ms=recovery,
            allow_trivial=self.options.allow_trivial,
        )
        self.sink.emit(self.report.drill)


def plan_batches(
    hosts: Sequence[HostState], serial: Sequence[int | str] | None
) -> list[list[HostState]]:
    """``serial: 2``, ``"25%"`` or ``[1, 5, "50%"]`` (the last size repeats)."""
    remaining = list(hosts)
    if not serial:
        return [remaining]
    batches: list[list[HostState]] = []
    index = 0
    while remaining:
        spec = serial[min(index, len(serial) - 1)]
        size = _batch_size(spec, len(hosts))
        batches.append(remaining[:size])
        remaining = remaining[size:]
        index += 1
    return batches


def _batch_size(spec: int | str, total: int) -> int:
    if isinstance(spec, str) and spec.endswith("%"):
        return max(1, math.ceil(total * float(spec[:-1]) / 100))
    return max(1, int(spec))


_ROW_WORDS = 500  # characters of a failed check's last line in its go/no-go row


def _check_message(result: StepResult) -> str:
    """What a go/no-go row says: the failure and the check's own last words."""
    message = result.message or ""
    if result.ok:
        return message
    said = (result.stderr.strip() or result.stdout.strip()).splitlines()
    if said and said[-1] not in message:
        last = said[-1][:_ROW_WORDS]
        return f"{message}: {last}" if message else last
    return message
