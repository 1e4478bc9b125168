"""One step across the hosts of a batch, in lockstep: every host's ``step.started``
record is made durable by one fsync (shared with the previous step's
``step.finished`` records) before any of them runs, then the hosts run in parallel up
to ``forks``, and each result is recorded on its host and emitted.

The executor, the saga (rollback and finally) and drills all run steps through one
``Fanout``. It owns the worker threads and the ``cancel`` event that an interrupt
sets; it decides nothing about what a failure means.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from ..record.events import Status, StepFinished, StepStarted
from ..spec.model import Phase

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from ..record.events import EventSink
    from ..record.results import StepResult
    from ..spec.model import Step
    from .hosts import HostState
    from .stepper import Stepper

T = TypeVar("T")


class Fanout:
    def __init__(
        self,
        *,
        stepper: Stepper,
        sink: EventSink,
        workers: int,
        skip: Collection[tuple[str, str]] = (),
    ) -> None:
        self.stepper = stepper
        self.sink = sink
        self.skip = skip  # (host, step) already done by the run being resumed
        self.cancel = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers))

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def fresh_cancel(self) -> None:
        """A new cancel event: an interrupt may have set the old one, and undos,
        rollback and finally steps must still run."""
        self.cancel = threading.Event()

    def step(self, step: Step, hosts: list[HostState]) -> list[StepResult]:
        """Run ``step`` on ``hosts`` (those not done already); the results in host
        order, ``run_once`` copies included."""
        pending = [h for h in hosts if (h.name, step.id) not in self.skip]
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
        cancel = self.cancel
        results = self.each(
            targets,
            lambda host: self.stepper.run_step(step, host, cancel),
            on_interrupt=lambda host, result: self._interrupted(step, host, result),
        )
        for host, result in zip(targets, results, strict=True):
            self._finish(step, host, result)
        if step.run_once and targets:
            results += self._copy_run_once(step, targets[0], results[0], pending[1:])
        return results

    def each(
        self,
        hosts: list[HostState],
        work: Callable[[HostState], T],
        on_interrupt: Callable[[HostState, T], None] | None = None,
    ) -> list[T]:
        """``work(host)`` for every host in parallel, results in host order. On
        Ctrl-C or SIGTERM: cancel what runs, wait for it, hand each result to
        ``on_interrupt``, then re-raise."""
        if not hosts:
            return []
        futures = [self._pool.submit(work, host) for host in hosts]
        try:
            wait(futures)
        except BaseException:
            self.cancel.set()
            wait(futures)
            if on_interrupt is not None:
                for host, future in zip(hosts, futures, strict=True):
                    on_interrupt(host, _result_of(future))
            raise
        return [f.result() for f in futures]

    def _interrupted(self, step: Step, host: HostState, result: StepResult) -> None:
        """A step cut short by Ctrl-C or SIGTERM: failed, and so is its host."""
        host.failed = True
        failed = replace(
            result, status=Status.FAILED, message=result.message or "interrupted"
        )
        self._finish(step, host, failed)

    def _finish(self, step: Step, host: HostState, result: StepResult) -> None:
        undoable = result.ok or step.undo_on_failure
        in_saga = (
            step.phase in (Phase.STEPS, Phase.VERIFY)
            and result.status is not Status.SKIPPED
            and undoable
        )
        host.record(step, result, in_saga=in_saga)
        self.sink.emit(StepFinished.of(result))

    def _copy_run_once(
        self, step: Step, ran: HostState, result: StepResult, others: list[HostState]
    ) -> list[StepResult]:
        """The other hosts of the batch see the result of the one that ran it."""
        copies = []
        for host in others:
            copy = replace(result, host=host.name, ran_on=ran.name)
            host.record(step, copy, in_saga=False)
            skipped = replace(
                copy, status=Status.SKIPPED, message=f"run_once: ran on {ran.name}"
            )
            self.sink.emit(StepFinished.of(skipped))
            copies.append(copy)
        return copies


def _result_of(future: Future[T]) -> T:
    return future.result()
