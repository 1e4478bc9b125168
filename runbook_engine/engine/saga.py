"""The saga: what a rollback undoes, in which order, and the phases that follow.

On each host to roll back, the ``undo`` of every completed step runs newest first
(a failing undo is recorded and the others still run), then the runbook's
``rollback:`` steps run on those hosts; ``finally:`` steps run at the end of every run
whose steps started. Which hosts are rolled back (the scope) is decided here too:
every host the run changed, or only the failed ones with ``--rollback-scope failed``.

It knows nothing of batches, retries or go/no-go (the executor's).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..record.events import (
    Notice,
    RollbackFinished,
    RollbackStarted,
    RunStatus,
    UndoFinished,
    UndoStarted,
)
from ..record.results import Attention, UndoDone
from ..spec.model import Phase

if TYPE_CHECKING:
    from ..record.events import EventSink
    from ..spec.model import Runbook
    from .fanout import Fanout
    from .hosts import HostState
    from .stepper import Stepper


@dataclass(slots=True, kw_only=True)
class RollbackDone:
    """How a rollback ended: its status, what needs a human, the undos that ran and
    when it ended (monotonic)."""

    status: RunStatus
    attention: list[Attention] = field(default_factory=list)
    undos: list[UndoDone] = field(default_factory=list)
    done_at: float | None = None


class Saga:
    def __init__(
        self,
        runbook: Runbook,
        *,
        fanout: Fanout,
        stepper: Stepper,
        sink: EventSink,
        scope: str = "all",
    ) -> None:
        self.runbook = runbook
        self.fanout = fanout
        self.stepper = stepper
        self.sink = sink
        self.scope = scope  # all | failed

    def hosts_in_scope(self, hosts: list[HostState]) -> list[HostState]:
        """The hosts a failure rolls back: every host the run changed (or that
        failed half-way), or only the failed ones."""
        if self.scope == "failed":
            return [h for h in hosts if h.failed]
        return changed_hosts(hosts)

    def skip(self) -> RollbackDone:
        """``--no-rollback``: nothing undone, and the audit log says so."""
        self.sink.emit(RollbackFinished(ok=False, skipped=True))
        self.sink.emit(
            Notice(kind="rollback.skipped", message="--no-rollback: rollback skipped")
        )
        return RollbackDone(status=RunStatus.FAILED)

    def roll_back(self, hosts: list[HostState], reason: str) -> RollbackDone:
        """Undo every host's completed steps newest first, in parallel across hosts,
        then run the ``rollback:`` steps on those hosts."""
        self.fanout.fresh_cancel()
        self.sink.emit(
            RollbackStarted(
                hosts=[h.name for h in hosts], reason=reason, scope=self.scope
            )
        )
        self.sink.barrier()
        done = RollbackDone(status=RunStatus.ROLLED_BACK)
        for attention, undos in self.fanout.each(hosts, self._undo_host):
            done.attention += attention
            done.undos += undos
        for step in self.runbook.steps_of(Phase.ROLLBACK):
            for result in self.fanout.step(step, hosts):
                if not result.ok:
                    what = f"rollback step failed: {result.message or result.status}"
                    done.attention.append(
                        Attention(host=result.host, step=step.id, what=what)
                    )
        done.done_at = time.monotonic()
        if done.attention:
            done.status = RunStatus.ROLLBACK_FAILED
        self.sink.emit(
            RollbackFinished(ok=not done.attention, needs_attention=done.attention)
        )
        return done

    def _undo_host(self, host: HostState) -> tuple[list[Attention], list[UndoDone]]:
        """One host's saga, newest first. A failing undo is recorded and the rest
        still run; after an interrupt (Ctrl-C, SIGTERM) no further undo starts, and
        ``runbook rollback RUN_ID`` finishes the saga later."""
        attention: list[Attention] = []
        undos: list[UndoDone] = []
        cancel = self.fanout.cancel
        for step, result in reversed(host.saga):
            if step.undo is None or result.ran_on not in (None, host.name):
                continue
            if cancel.is_set():
                break
            self.sink.emit(UndoStarted(step=step.id, host=host.name, command=None))
            self.sink.barrier()
            undone = self.stepper.run_undo(step, step.undo, host, cancel)
            self.sink.emit(UndoFinished.of(undone))
            undos.append(
                UndoDone(
                    host=host.name,
                    step=step.id,
                    status=undone.status.value,
                    duration_ms=int(undone.duration * 1000),
                )
            )
            if not undone.ok:
                what = f"undo failed: {undone.message or undone.status}"
                attention.append(Attention(host=host.name, step=step.id, what=what))
        host.saga.clear()
        return attention, undos

    def run_finally(self, hosts: list[HostState]) -> None:
        """The ``finally:`` steps, on every host whose steps started."""
        steps = self.runbook.steps_of(Phase.FINALLY)
        if not steps:
            return
        self.fanout.fresh_cancel()
        started = [h for h in hosts if h.started] or hosts
        for step in steps:
            self.fanout.step(step, started)


def changed_hosts(hosts: list[HostState]) -> list[HostState]:
    """Hosts whose steps started and that have something to undo or failed."""
    return [h for h in hosts if h.started and (h.saga or h.failed)]
