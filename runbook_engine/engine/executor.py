"""The executor: preconditions -> batches of steps and verify -> rollback -> finally.

Hosts run in lockstep, one step at a time across the hosts of a batch (in parallel up
to ``forks``), so ``run_once``, ``max_fail_percentage`` and the audit barrier are
simple: the ``step.started`` records of every host are made durable by one fsync
before any of them runs, and that fsync also covers the previous step's
``step.finished`` records.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..errors import AuditError, NoGoError
from ..record.events import (
    BatchStarted,
    DrillReport,
    EventSink,
    GoNoGo,
    Notice,
    RollbackFinished,
    RollbackStarted,
    RunFinished,
    RunStatus,
    Status,
    StepFinished,
    StepStarted,
    UndoFinished,
    UndoStarted,
)
from ..spec.model import OnFailure, Phase, Runbook, Step

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .hosts import HostState
    from .results import StepResult
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
    no_rollback: bool = False
    rollback_scope: str = "all"  # all | failed
    check_only: bool = False  # `runbook check`: preconditions only
    rollback_only: bool = False  # `runbook rollback RUN_ID`: undo what a run completed
    skip: frozenset[tuple[str, str]] = frozenset()  # (host, step) done in a resumed run


@dataclass(slots=True, kw_only=True)
class RunReport:
    status: RunStatus
    duration: float
    hosts: dict[str, str]
    checks: list[dict[str, object]] = field(default_factory=list)
    needs_attention: list[dict[str, str]] = field(default_factory=list)
    message: str | None = None
    interrupted_by: str | None = None  # "SIGINT" | "SIGTERM" | "SIGHUP"
    failure_at: float | None = None  # monotonic time of the first failure (drills)
    rollback_done_at: float | None = None
    audit_failed: bool = False  # the audit log stopped being writable mid-run
    undos: list[dict[str, object]] = field(default_factory=list)
    drill: DrillReport | None = None


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
        self.stepper = stepper
        self.sink = sink
        self.options = options
        self.acquire_locks = acquire_locks
        self.release_locks = release_locks
        self.cancel = threading.Event()
        self.pool = ThreadPoolExecutor(
            max_workers=max(1, min(options.forks, len(self.hosts)))
        )
        self.report = RunReport(status=RunStatus.SUCCEEDED, duration=0.0, hosts={})
        self._main_started = False
        self._refused = False  # an approval was refused

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
            self.pool.shutdown(wait=True)
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
        try:
            self.acquire_locks()
        except NoGoError as exc:
            self.release_locks()  # the ones taken before the refusal
            self.report.message = str(exc)
            return RunStatus.NO_GO
        status = RunStatus.FAILED
        try:
            try:
                status = self._phases()
            except (KeyboardInterrupt, Terminated) as exc:
                status = self._interrupted(exc)
            self._finally()
            if self.options.fail_at is not None and self._main_started:
                self._drill_report(status)
        except (KeyboardInterrupt, Terminated) as exc:
            # a second Ctrl-C during `finally`: skip the rest, still record it
            status = self._interrupted(exc)
            self.report.message = "interrupted again: finally steps skipped"
        finally:
            self.release_locks()
        return status

    def _interrupted(self, exc: BaseException) -> RunStatus:
        self.cancel.set()
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
        rows = self._check_rows()
        go = all(row["status"] in ("ok", "changed", "skipped") for row in rows)
        self.report.checks = rows
        self.sink.emit(GoNoGo(go=go, checks=rows))
        if not go:
            self.report.message = "no-go: a precondition failed, nothing was changed"
        return go

    def _check_rows(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for step in self.runbook.steps_of(Phase.PRECONDITIONS):
            # every check runs, so the table shows all failures, not just the first
            for result in self._run_step(step, self.hosts):
                rows.append(
                    {
                        "step": step.id,
                        "name": step.title,
                        "host": result.host,
                        "status": result.status.value,
                        "message": _check_message(result),
                    }
                )
        return rows

    # -- steps in batches --------------------------------------------------------------

    def _main(self) -> RunStatus:
        batches = plan_batches(self.hosts, self.runbook.serial)
        body = [
            *self.runbook.steps_of(Phase.STEPS),
            *self.runbook.steps_of(Phase.VERIFY),
        ]
        body = self._from_start_at(body)
        stop: str | None = None  # why no further step starts
        rollback_hosts: list[HostState] = []
        continued_failure = False
        for number, batch in enumerate(batches, start=1):
            if number > 1:
                gate_failed = self._gate(batches[number - 2])
                if gate_failed:
                    stop, rollback_hosts = gate_failed, self._changed_hosts()
                    break
            self.sink.emit(
                BatchStarted(
                    batch=number,
                    hosts=[h.name for h in batch],
                    plan=[[h.name for h in b] for b in batches] if number == 1 else [],
                )
            )
            for host in batch:
                host.started = True
            stop, abort, continued = self._run_batch(batch, body)
            continued_failure = continued_failure or continued
            if abort:
                self.report.message = stop
                return RunStatus.FAILED
            if stop:
                break
        failed = [h for h in self.hosts if h.failed]
        if stop is None and failed:
            # within max_fail_percentage: the run went on; roll back the failed hosts
            stop, rollback_hosts = f"{len(failed)} host(s) failed", failed
        elif stop is not None and not rollback_hosts:
            rollback_hosts = (
                failed
                if self.options.rollback_scope == "failed"
                else self._changed_hosts()
            )
        if stop is None:
            if continued_failure:
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

    def _run_batch(
        self, batch: list[HostState], body: list[Step]
    ) -> tuple[str | None, bool, bool]:
        """(why the run stops or None, abort without rollback, a `continue` failure)."""
        continued = False
        for step in body:
            targets = [h for h in batch if not h.failed]
            if not targets:
                break
            for result in self._run_step(step, targets):
                if result.ok or result.status is Status.SKIPPED:
                    continue
                policy = step.on_failure or self.runbook.on_failure
                if step.ignore_errors:
                    continue
                if policy is OnFailure.CONTINUE:
                    continued = True
                    continue
                host = self._host(result.host)
                host.failed = True
                self._mark_failure()
                if step.action.kind == "approve":
                    self._refused = True
                if policy is OnFailure.ABORT:
                    return (
                        f"step {step.id!r} failed on {host.name} (on_failure: abort)",
                        True,
                        continued,
                    )
            if self._over_failure_budget():
                return self._failure_summary(step), False, continued
            if self.options.fail_at == step.id:
                self._mark_failure()
                self.sink.emit(
                    Notice(
                        kind="drill.injected",
                        message=f"failure injected after step {step.id!r}",
                    )
                )
                return (
                    f"drill: failure injected after step {step.id!r}",
                    False,
                    continued,
                )
        return None, False, continued

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
            for result in self._run_step(
                step, [h for h in previous if not h.failed] or previous
            ):
                if not result.ok:
                    self._mark_failure()
                    why = result.message or result.status
                    return f"batch gate {step.id!r} failed on {result.host}: {why}"
        return None

    def _changed_hosts(self) -> list[HostState]:
        return [h for h in self.hosts if h.started and (h.saga or h.failed)]

    # -- one step across hosts ---------------------------------------------------------

    def _run_step(self, step: Step, hosts: list[HostState]) -> list[StepResult]:
        pending = [h for h in hosts if (h.name, step.id) not in self.options.skip]
        targets = pending[:1] if step.run_once else pending
        for host in targets:
            self.sink.emit(
                StepStarted(
                    step=step.id,
                    host=host.name,
                    phase=step.phase.value,
                    action=step.action.kind,
                    command=None,
                )
            )
        self.sink.barrier()
        results = self._parallel(
            targets, lambda host: self.stepper.run_step(step, host, self.cancel)
        )
        for host, result in zip(targets, results, strict=True):
            self._finish(step, host, result)
        if step.run_once and targets:
            results += self._copy_run_once(step, targets[0], results[0], pending[1:])
        return results

    def _parallel(
        self, hosts: list[HostState], work: Callable[[HostState], StepResult]
    ) -> list[StepResult]:
        if not hosts:
            return []
        futures = [self.pool.submit(work, host) for host in hosts]
        try:
            wait(futures)
        except BaseException:
            # Ctrl-C or SIGTERM: kill what runs, keep the results, then go on up
            self.cancel.set()
            wait(futures)
            for host, future in zip(hosts, futures, strict=True):
                self._finish_interrupted(host, future)
            raise
        return [f.result() for f in futures]

    def _finish_interrupted(self, host: HostState, future: Future[StepResult]) -> None:
        result = future.result()
        step = self.runbook.step(result.step_id)
        if step is not None:
            self._finish(
                step,
                host,
                replace(
                    result,
                    status=Status.FAILED,
                    message=result.message or "interrupted",
                ),
            )

    def _finish(self, step: Step, host: HostState, result: StepResult) -> None:
        undoable = result.ok or step.undo_on_failure
        in_saga = (
            step.phase in (Phase.STEPS, Phase.VERIFY)
            and result.status is not Status.SKIPPED
            and undoable
        )
        host.record(step, result, in_saga=in_saga)
        self.sink.emit(_finished(result, step))

    def _copy_run_once(
        self, step: Step, ran: HostState, result: StepResult, others: list[HostState]
    ) -> list[StepResult]:
        copies = []
        for host in others:
            copy = replace(result, host=host.name, ran_on=ran.name)
            host.record(step, copy, in_saga=False)
            skipped = replace(
                copy, status=Status.SKIPPED, message=f"run_once: ran on {ran.name}"
            )
            self.sink.emit(_finished(skipped, step))
            copies.append(copy)
        return copies

    def _host(self, name: str) -> HostState:
        return next(h for h in self.hosts if h.name == name)

    # -- rollback ----------------------------------------------------------------------

    def _rollback(self, hosts: list[HostState], reason: str) -> RunStatus:
        if self.options.no_rollback:
            self.sink.emit(RollbackFinished(ok=False, skipped=True))
            self.sink.emit(
                Notice(
                    kind="rollback.skipped", message="--no-rollback: rollback skipped"
                )
            )
            return RunStatus.FAILED
        self.cancel = threading.Event()  # an interrupt may have set it; undos must run
        scope = self.options.rollback_scope
        self.sink.emit(
            RollbackStarted(hosts=[h.name for h in hosts], reason=reason, scope=scope)
        )
        self.sink.barrier()
        attention: list[dict[str, str]] = []
        for needs in self._parallel_undo(hosts):
            attention.extend(needs)
        for step in self.runbook.steps_of(Phase.ROLLBACK):
            for result in self._run_step(step, hosts):
                if not result.ok:
                    attention.append(
                        {
                            "host": result.host,
                            "step": step.id,
                            "what": "rollback step failed: "
                            f"{result.message or result.status}",
                        }
                    )
        self.report.rollback_done_at = time.monotonic()
        self.report.needs_attention = attention
        self.sink.emit(RollbackFinished(ok=not attention, needs_attention=attention))
        return RunStatus.ROLLBACK_FAILED if attention else RunStatus.ROLLED_BACK

    def _parallel_undo(self, hosts: list[HostState]) -> list[list[dict[str, str]]]:
        if not hosts:
            return []
        futures = [self.pool.submit(self._undo_host, host) for host in hosts]
        wait(futures)
        return [f.result() for f in futures]

    def _undo_host(self, host: HostState) -> list[dict[str, str]]:
        """The saga, newest first. A failing undo is recorded and the rest still run."""
        attention = []
        for step, result in reversed(host.saga):
            if step.undo is None or result.ran_on not in (None, host.name):
                continue
            self.sink.emit(UndoStarted(step=step.id, host=host.name, command=None))
            self.sink.barrier()
            undone = self.stepper.run_undo(step, step.undo, host, self.cancel)
            self.sink.emit(
                UndoFinished(
                    step=step.id,
                    host=host.name,
                    status=undone.status,
                    rc=undone.rc,
                    duration_ms=int(undone.duration * 1000),
                    message=undone.message,
                    stdout_tail=_short(undone.stdout),
                    stderr_tail=_short(undone.stderr),
                    started_at=undone.started_at,
                )
            )
            self.report.undos.append(
                {
                    "host": host.name,
                    "step": step.id,
                    "status": undone.status.value,
                    "duration_ms": int(undone.duration * 1000),
                }
            )
            if not undone.ok:
                attention.append(
                    {
                        "host": host.name,
                        "step": step.id,
                        "what": f"undo failed: {undone.message or undone.status}",
                    }
                )
        host.saga.clear()
        return attention

    # -- drills ------------------------------------------------------------------------

    def _drill_report(self, status: RunStatus) -> None:
        """Run the checks again and compare: PASS when the rollback was clean and the
        system answers every check as it did before the run."""
        before = self.report.checks
        after = self._check_rows()
        differences = [
            f"{b['host']} {b['name']}: {b['status']} before, {a['status']} after"
            for b, a in zip(before, after, strict=False)
            if (b["status"] in ("ok", "changed")) != (a["status"] in ("ok", "changed"))
        ]
        if status is not RunStatus.ROLLED_BACK:
            differences.insert(0, f"the run ended {status.value}, not rolled_back")
        for item in self.report.needs_attention:
            differences.append(f"{item['host']} {item['step']}: {item['what']}")
        recovery = None
        if (
            self.report.failure_at is not None
            and self.report.rollback_done_at is not None
        ):
            recovery = int(
                (self.report.rollback_done_at - self.report.failure_at) * 1000
            )
        done = sorted(
            {
                s
                for h in self.hosts
                for s, r in h.results.items()
                if r.phase in ("steps", "verify") and r.ok
            }
        )
        self.report.drill = DrillReport(
            passed=not differences,
            fail_at=self.options.fail_at or "",
            failure=self.report.message,
            steps_done=[s.id for s in self.runbook.all_steps() if s.id in done],
            undos=list(self.report.undos),
            checks_before=before,
            checks_after=after,
            differences=differences,
            recovery_ms=recovery,
        )
        self.sink.emit(self.report.drill)

    # -- finally -----------------------------------------------------------------------

    def _finally(self) -> None:
        steps = self.runbook.steps_of(Phase.FINALLY)
        if not steps or not self._main_started:
            return
        self.cancel = threading.Event()
        hosts = [h for h in self.hosts if h.started] or self.hosts
        for step in steps:
            self._run_step(step, hosts)


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


def _check_message(result: StepResult) -> str:
    """What a go/no-go row says: the failure and the check's own last words."""
    message = result.message or ""
    if result.ok:
        return message
    said = (result.stderr.strip() or result.stdout.strip()).splitlines()
    if said and said[-1] not in message:
        return f"{message}: {said[-1][:200]}" if message else said[-1][:200]
    return message


def _short(text: str, lines: int = 10) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _finished(result: StepResult, step: Step) -> StepFinished:
    return StepFinished(
        step=result.step_id,
        host=result.host,
        phase=step.phase.value,
        status=result.status,
        rc=result.rc,
        attempt=result.attempts,
        duration_ms=int(result.duration * 1000),
        command=result.command,
        message=result.message,
        stdout_tail=result.stdout,
        stderr_tail=result.stderr,
        changed=result.changed,
        started_at=result.started_at,
        http_status=result.http_status,
        set_vars=result.set_vars,
        transfer=result.transfer,
    )
