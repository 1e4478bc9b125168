"""Reading a run before it happens: ``runbook plan`` (nothing runs, unless
``--probe``: then the safe steps run, audited as a run of mode ``plan`` in the
store) and
``runbook rollback --plan`` (the undos a rollback would run, rendered from the saved
results). Both build host states and a stepper the way a run does, and close every
connection they opened.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from ..record.auditsink import AuditSink
from ..record.events import MultiSink, RunFinished, RunStatus
from ..record.forward import Forwarder, parse_target
from ..spec.model import Phase
from ..transports.local import LocalTransport
from ..transports.pool import TransportPool
from .approval import TerminalApprover
from .fanout import Fanout
from .hosts import ContextBuilder, HostState, RunInfo
from .request import SSH_PASSPHRASE_SECRET, new_run_id, operator_name
from .session import record_start
from .stepper import Stepper

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from ..record.events import EventSink
    from .request import Prepared
    from .store import StateStore


class _NullSink:
    def emit(self, event: object) -> None:
        pass

    def barrier(self) -> None:
        pass


@contextlib.contextmanager
def _planning(
    prepared: Prepared, sink: EventSink, run_id: str
) -> Iterator[tuple[list[HostState], Stepper]]:
    """Host states and a stepper for reading a plan: nothing connects until a probe
    runs, and every connection is closed at the end."""
    pool = TransportPool(
        accept_new_host_keys=prepared.request.accept_new_host_keys,
        passphrase=prepared.secrets.get(SSH_PASSPHRASE_SECRET),
    )
    operator = operator_name()
    try:
        hosts = [
            HostState(
                name=h.name,
                address=h.address,
                host_vars=h.vars,
                transport=pool.get(h),
            )
            for h in prepared.hosts
        ]
        contexts = ContextBuilder(
            params=prepared.params,
            secrets=prepared.secrets,
            run=RunInfo(
                id=run_id,
                operator=operator,
                started_at=run_id,
                runbook_dir=str(prepared.request.runbook.resolve().parent),
            ),
        )
        approver = TerminalApprover(
            yes=False, approve=frozenset(), sink=sink, operator=operator
        )
        stepper = Stepper(
            contexts=contexts,
            masker=prepared.masker,
            sink=sink,
            approver=approver,
            live=lambda host, step: None,
            local_transport=LocalTransport("local"),
            base_dir=prepared.request.runbook.parent,
        )
        yield hosts, stepper
    finally:
        pool.close()


def plan_runbook(
    prepared: Prepared,
    *,
    store: StateStore | None = None,
    probe: bool = False,
    warn: Callable[[str], None] = lambda text: None,
) -> list[Any]:
    """The plan of a prepared request. Nothing runs, unless ``probe``: then the
    ``safe: true`` steps really run (so later steps render with real values), under
    a run of mode ``plan`` in ``store``'s audit trail, each probe recorded like any
    step."""
    from .plan import build_plan

    if not probe:
        with _planning(prepared, _NullSink(), "plan") as (hosts, stepper):
            return build_plan(prepared.runbook.phases, hosts, stepper, probe=None)
    assert store is not None, "a probe is audited: it needs the store"
    run_id = new_run_id()
    audit = store.open_audit(run_id)
    url = prepared.request.audit_forward
    forwarder = Forwarder(parse_target(url), warn=warn) if url else None
    sink = MultiSink(
        AuditSink(audit, run_id=run_id, forwarder=forwarder), masker=prepared.masker
    )
    began = time.monotonic()
    status = RunStatus.FAILED
    try:
        record_start(sink, prepared, run_id, mode="plan")
        with _planning(prepared, sink, run_id) as (hosts, stepper):
            fanout = Fanout(stepper=stepper, sink=sink, workers=len(hosts))
            try:
                planned = build_plan(
                    prepared.runbook.phases, hosts, stepper, probe=fanout.step
                )
            finally:
                fanout.close()
        status = RunStatus.SUCCEEDED
        return planned
    finally:
        sink.emit(
            RunFinished(
                status=status,
                duration_ms=int((time.monotonic() - began) * 1000),
                hosts={h.name: "ok" for h in prepared.hosts},
            )
        )
        sink.barrier()
        audit.close()
        if forwarder is not None:
            forwarder.close()


def plan_rollback(prepared: Prepared) -> list[tuple[str, str, str]]:
    """What ``runbook rollback RUN_ID`` would run, per host, newest first, as
    (host, step id, undo): each undo rendered as far as its saved results allow,
    then the runbook's ``rollback:`` steps. Nothing runs."""
    from .plan import describe_step, describe_undo

    rows: list[tuple[str, str, str]] = []
    with _planning(prepared, _NullSink(), "rollback-plan") as (hosts, stepper):
        for host in hosts:
            host.restore(prepared.runbook, prepared.request.completed)
            for step, result in reversed(host.saga):
                if step.undo is not None and result.ran_on in (None, host.name):
                    rows.append(
                        (host.name, step.id, describe_undo(step, host, stepper))
                    )
            if host.saga:
                rows += [
                    (
                        host.name,
                        step.id,
                        f"rollback step: {describe_step(step, host, stepper)}",
                    )
                    for step in prepared.runbook.steps_of(Phase.ROLLBACK)
                ]
    return rows
