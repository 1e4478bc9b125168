"""One invocation of ``run`` / ``check`` / ``drill`` / ``resume`` / ``rollback`` once
its input is checked (``request.prepare``): open the audit writer and run state in the
store (exit 4 when the state dir is unusable), connect, take locks (the store's
controller lock first, then each host's), run the executor, close everything but the
store, which its opener closes.

This is the only place that knows how the pieces fit together; the CLI builds a
``RunRequest`` and prints what comes back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..errors import (
    AuditError,
    HostKeyError,
    NoGoError,
    RunbookError,
    TransportError,
)
from ..record.auditsink import AuditSink
from ..record.events import (
    EventSink,
    HostConnected,
    MultiSink,
    Notice,
    RunFinished,
    RunStarted,
    RunStatus,
)
from ..record.forward import Forwarder, parse_target
from ..transports.local import LocalTransport
from ..transports.pool import TransportPool
from .approval import TerminalApprover
from .executor import Executor, RunReport, Terminated
from .hosts import ContextBuilder, HostState, RunInfo
from .locks import LockHolder, RemoteLock, RunLock
from .request import (
    SSH_PASSPHRASE_SECRET,
    Prepared,
    git_commit,
    new_run_id,
    operator_name,
)
from .stepper import Announce, LiveFactory, Stepper

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ..record.audit import AuditWriter
    from ..record.results import StepResult
    from .state import RunStateSink
    from .store import StateStore


class Session:
    """Runs a prepared request, keeping its state in ``store``. ``sinks`` (console,
    reports) receive every event."""

    def __init__(
        self,
        prepared: Prepared,
        *,
        store: StateStore,
        sinks: Sequence[EventSink],
        live: LiveFactory,
        announce: Announce | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.prepared = prepared
        self.store = store
        self.sinks = list(sinks)
        self.live = live
        self.announce = announce
        self.warn = warn or (lambda message: None)
        self.run_id = new_run_id()
        self.operator = operator_name()
        self.pool = TransportPool(
            accept_new_host_keys=prepared.request.accept_new_host_keys,
            passphrase=prepared.secrets.get(SSH_PASSPHRASE_SECRET),
        )
        self.audit: AuditWriter | None = None
        self.state: RunStateSink | None = None
        self.locks: list[tuple[RunLock, LockHolder]] = []
        self.untrusted: list[str] = []  # hosts whose key is refused, and why
        self.chain_head: str | None = None

    def run(self) -> RunReport:
        request, prepared, store = self.prepared.request, self.prepared, self.store
        if request.mode == "resume" and request.resumed_from:
            store.claim_resume(request.resumed_from, self.run_id)
        self.audit = store.open_audit(self.run_id)
        forwarder = self._forwarder()
        try:
            self.state = store.state_sink(self.run_id)
            sink = MultiSink(
                AuditSink(self.audit, run_id=self.run_id, forwarder=forwarder),
                self.state,
                *self.sinks,
                masker=prepared.masker,  # secrets are masked once, for every sink
            )
            return self._run(sink)
        finally:
            self.pool.close()
            if self.state is not None:
                self.state.close()
            self.chain_head = self.audit.head_hash
            self.audit.close()
            if forwarder is not None:
                forwarder.close()

    def _forwarder(self) -> Forwarder | None:
        url = self.prepared.request.audit_forward
        if not url:
            return None
        return Forwarder(parse_target(url), warn=self.warn)

    def _run(self, sink: MultiSink) -> RunReport:
        prepared, request = self.prepared, self.prepared.request
        record_start(sink, prepared, self.run_id, mode=request.mode)
        self._notices(sink)
        sink.barrier()
        try:
            hosts = self._host_states(sink)
        except (KeyboardInterrupt, Terminated) as exc:
            return _interrupted_before_start(sink, exc)
        executor = Executor(
            prepared.runbook,
            hosts,
            stepper=self._stepper(sink),
            sink=sink,
            options=request.options,
            acquire_locks=lambda: self._before_any_step(hosts, sink),
            release_locks=self._release_locks,
        )
        try:
            return executor.execute()
        except AuditError as exc:
            return RunReport(
                status=executor.report.status,
                duration=0.0,
                hosts={},
                message=str(exc),
                audit_failed=True,
            )

    def _notices(self, sink: MultiSink) -> None:
        """What the operator should know before the first step, in the audit log."""
        prepared, request = self.prepared, self.prepared.request
        for warning in prepared.warnings:
            sink.emit(Notice(kind="warning", message=warning))
        for why in prepared.absent:
            sink.emit(Notice(kind="secret.absent", message=why))
        for kind, message in request.notices:
            sink.emit(Notice(kind=kind, message=message))
        if request.mode != "resume":
            return
        for host, done in _done_by_host(request.completed).items():
            sink.emit(
                Notice(
                    kind="resume.skipped",
                    host=host,
                    message=f"{host}: done by run {request.resumed_from} and"
                    f" earlier, not repeated: {', '.join(done)}",
                )
            )

    def _stepper(self, sink: MultiSink) -> Stepper:
        prepared, request = self.prepared, self.prepared.request
        started = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        contexts = ContextBuilder(
            params=prepared.params,
            secrets=prepared.secrets,
            run=RunInfo(
                id=self.run_id,
                operator=self.operator,
                started_at=started,
                runbook_dir=str(request.runbook.resolve().parent),
            ),
        )
        approver = TerminalApprover(
            yes=request.yes,
            approve=request.approve,
            sink=sink,
            operator=self.operator,
            grants=lambda step: self.store.find_grant(self.run_id, step),
            run_id=self.run_id,
        )
        return Stepper(
            contexts=contexts,
            masker=prepared.masker,
            sink=sink,
            approver=approver,
            live=self.live,
            local_transport=LocalTransport("local"),
            base_dir=request.runbook.parent,
            announce=self.announce,
        )

    def _host_states(self, sink: MultiSink) -> list[HostState]:
        request = self.prepared.request
        states = []
        for host in self.prepared.hosts:
            state = HostState(
                name=host.name,
                address=host.address,
                host_vars=host.vars,
                transport=self.pool.get(host),
            )
            state.restore(self.prepared.runbook, request.completed)
            states.append(state)
        self._connect_all(sink)
        return states

    def _connect_all(self, sink: MultiSink) -> None:
        """Open every SSH connection in parallel and record each host key. A failure
        here is reported by the host's first step (which connects again, under the
        step's retries)."""
        remote = [h for h in self.prepared.hosts if not h.is_local]
        if not remote:
            return
        failures = self.pool.connect_all(remote, self.prepared.request.options.forks)
        self.untrusted = [
            str(exc) for exc in failures.values() if isinstance(exc, HostKeyError)
        ]
        for host in remote:
            if host.name in failures:
                continue
            facts = dict(self.pool.get(host).describe())
            sink.emit(HostConnected(host=host.name, facts=facts))
            if facts.get("host_key_status") == "added":
                sink.emit(
                    Notice(
                        kind="hostkey.accepted",
                        host=host.name,
                        message=f"{host.name}: new host key"
                        f" {facts.get('host_key', '')} added to known_hosts"
                        " (--accept-new-host-keys)",
                    )
                )

    def _before_any_step(self, hosts: list[HostState], sink: MultiSink) -> None:
        """A host whose key is not trusted is a no-go before anything runs on any
        host (a later batch's host would otherwise fail after earlier ones
        changed); then the locks."""
        if self.untrusted:
            raise NoGoError("; ".join(self.untrusted))
        self._acquire_locks(hosts, sink)

    def _acquire_locks(self, hosts: list[HostState], sink: MultiSink) -> None:
        """The controller's lock, then each host's, in one global order (by address
        and port, whatever order the inventory lists them in), so two controllers
        never each hold part of the set. Each lock is registered before it is taken,
        so however the run ends, release finds it (release removes only our own)."""
        name = self.prepared.runbook.lock
        if not name:
            return
        owner = LockHolder.current(run_id=self.run_id, operator=self.operator)
        for where, lock in self._locks_in_order(name, hosts):
            self.locks.append((lock, owner))
            try:
                lock.acquire(owner)
            except TransportError as exc:
                raise NoGoError(f"cannot take lock {name!r} on {where}: {exc}") from exc
        sink.emit(Notice(kind="lock.acquired", message=f"lock {name!r} acquired"))

    def _locks_in_order(
        self, name: str, hosts: list[HostState]
    ) -> list[tuple[str, RunLock]]:
        by_name = {h.name: h for h in self.prepared.hosts}
        inventory = self.prepared.request.inventory
        remote = sorted(
            (h for h in hosts if not isinstance(h.transport, LocalTransport)),
            key=lambda h: (
                by_name[h.name].address,
                by_name[h.name].port,
                by_name[h.name].user,
                h.name,
            ),
        )
        controller = self.store.controller_lock(name)
        locks: list[tuple[str, RunLock]] = [(controller.where, controller)]
        for state in remote:
            lock = RemoteLock(
                state.transport,
                name,
                lock_dir=by_name[state.name].lock_dir,
                inventory=None if inventory is None else str(inventory),
            )
            locks.append((state.name, lock))
        return locks

    def _release_locks(self) -> None:
        """Every lock registered, newest first; a host that cannot be reached keeps
        its lock (its holder record names this run for `runbook unlock`)."""
        for lock, owner in reversed(self.locks):
            try:
                lock.release(owner)
            except (RunbookError, OSError):
                pass
            except (KeyboardInterrupt, Terminated):
                pass  # the run is ending anyway: the other locks still go
        self.locks.clear()


def _done_by_host(
    completed: Mapping[tuple[str, str], StepResult],
) -> dict[str, list[str]]:
    done: dict[str, list[str]] = {}
    for host, step in completed:
        done.setdefault(host, []).append(step)
    return done


def _interrupted_before_start(sink: MultiSink, exc: BaseException) -> RunReport:
    """Ctrl-C (or SIGTERM) while connecting: nothing ran; record how it ended."""
    name = exc.signal_name if isinstance(exc, Terminated) else "SIGINT"
    report = RunReport(
        status=RunStatus.INTERRUPTED,
        duration=0.0,
        hosts={},
        message=f"{name} while connecting: nothing ran",
        interrupted_by=name,
    )
    sink.emit(
        RunFinished(
            status=report.status, duration_ms=0, hosts={}, message=report.message
        )
    )
    sink.barrier()
    return report


def record_start(
    sink: MultiSink, prepared: Prepared, run_id: str, *, mode: str
) -> None:
    request = prepared.request
    sink.emit(
        RunStarted(
            runbook=str(request.runbook.resolve()),
            runbook_name=prepared.runbook.name,
            runbook_sha256=prepared.runbook.sha256,
            git_commit=git_commit(request.runbook.resolve()),
            params=dict(prepared.params),
            operator=operator_name(),
            command_line=request.command_line,
            hosts=[h.name for h in prepared.hosts],
            inventory=None
            if request.inventory is None
            else str(request.inventory.resolve()),
            limit=request.limit,
            resumed_from=request.resumed_from,
            mode=mode,
            lock=prepared.runbook.lock,
        )
    )
