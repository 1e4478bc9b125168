"""One invocation of ``run`` / ``check`` / ``drill`` / ``resume``: load and check every
input (exit 2 before anything runs), open the state dir and audit log (exit 4 when
unusable), take locks, connect, run the executor, close everything.

This is the only place that knows how the pieces fit together; the CLI builds a
``RunRequest`` and prints what comes back.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import secrets as random_tokens
import socket
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .. import render
from ..errors import (
    AuditError,
    InputError,
    NoGoError,
    RenderError,
    ResumeError,
    RunbookError,
    TransportError,
)
from ..record.audit import AuditLog, key_from_env
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
from ..secrets import Masker, read_secrets
from ..spec.build import load_runbook
from ..spec.inventory import Host, Inventory, load_inventory
from ..spec.loader import load_mapping_file
from ..spec.model import Phase
from ..spec.params import resolve_params
from ..statedir import ensure_state_dir
from ..transports.local import LocalTransport
from ..transports.pool import TransportPool
from .approval import TerminalApprover
from .executor import Executor, RunOptions, RunReport, Terminated
from .fanout import Fanout
from .hosts import ContextBuilder, HostState, RunInfo
from .locks import LocalLock, LockHolder, RemoteLock, RunLock
from .state import StateSink
from .stepper import Announce, LiveFactory, Stepper

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from pathlib import Path

    from ..record.results import StepResult
    from ..spec.model import Runbook

# a runbook secret with this name unlocks encrypted SSH identity files
SSH_PASSPHRASE_SECRET = "ssh_passphrase"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRequest:
    runbook: Path
    assignments: Mapping[str, str] = field(default_factory=dict)
    params_files: tuple[Path, ...] = ()  # --params-file, then each -e @FILE
    given_params: Mapping[str, Any] | None = (
        None  # resume: typed values from saved state
    )
    inventory: Path | None = None
    limit: str | None = None
    state_dir: Path
    options: RunOptions = field(default_factory=RunOptions)
    yes: bool = False
    approve: frozenset[str] = frozenset()
    accept_new_host_keys: bool = False
    mode: str = "run"
    resumed_from: str | None = None
    command_line: str = ""
    completed: Mapping[tuple[str, str], StepResult] = field(default_factory=dict)
    notices: tuple[tuple[str, str], ...] = ()  # (kind, message) for the audit log


@dataclass(slots=True, kw_only=True)
class Prepared:
    request: RunRequest
    runbook: Runbook
    params: dict[str, Any]
    secrets: dict[str, str]
    masker: Masker
    warnings: list[str]
    inventory: Inventory
    hosts: list[Host]


def operator_name() -> str:
    explicit = os.environ.get("RUNBOOK_OPERATOR")
    if explicit:
        return explicit
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def new_run_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{random_tokens.token_hex(3)}"


def prepare(request: RunRequest) -> Prepared:
    """Everything that can be wrong with the input, checked before anything runs."""
    runbook = load_runbook(request.runbook)
    params = _params(runbook, request)
    values, warnings = read_secrets(runbook.secrets.values())
    masker = Masker.of(values)
    inventory = (
        load_inventory(request.inventory) if request.inventory else Inventory.local()
    )
    pattern = _hosts_pattern(runbook, params)
    hosts = inventory.resolve(pattern, request.limit)
    _check_step_options(runbook, request)
    return Prepared(
        request=request,
        runbook=runbook,
        params=params,
        secrets=values,
        masker=masker,
        warnings=warnings,
        inventory=inventory,
        hosts=hosts,
    )


def _check_step_options(runbook: Runbook, request: RunRequest) -> None:
    """Flags that name steps must name real ones: exit 2 before anything runs."""
    named = [
        ("--start-at", request.options.start_at),
        ("--fail-at", request.options.fail_at),
    ]
    for flag, step_id in named:
        if step_id and runbook.step(step_id) is None:
            raise InputError(f"{flag}: no step {step_id!r} in {runbook.path}")
    gates = [s.id for s in runbook.all_steps() if s.action.kind == "approve"]
    for step_id in sorted(request.approve):
        step = runbook.step(step_id)
        if step is not None and step.action.kind == "approve":
            continue
        problem = (
            f"no step {step_id!r} in {runbook.path}"
            if step is None
            else f"step {step_id!r} is a {step.action.kind} step, not an approve step"
        )
        known = ", ".join(gates) or "none"
        raise InputError(f"--approve {step_id}: {problem} (approve steps: {known})")


def _params(runbook: Runbook, request: RunRequest) -> dict[str, Any]:
    given: dict[str, Any] = dict(request.given_params or {})
    positions = {}
    for path in request.params_files:  # later files win, as later -e do
        loaded = load_mapping_file(path)
        given.update(loaded.data)
        positions.update({name: loaded.positions.key((name,)) for name in loaded.data})
    given.update(request.assignments)
    for name in request.assignments:  # -e wins over the file: no file position
        positions.pop(name, None)
    return resolve_params(
        runbook.params,
        given,
        from_cli=frozenset(request.assignments),
        positions=positions,
    )


def _hosts_pattern(runbook: Runbook, params: Mapping[str, Any]) -> str | list[str]:
    context = {"params": params, "env": dict(os.environ)}
    try:
        if isinstance(runbook.hosts, str):
            return render.render(runbook.hosts, context, "hosts")
        return [render.render(h, context, "hosts") for h in runbook.hosts]
    except RenderError as exc:
        raise InputError(str(exc)) from None


def git_commit(path: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(path.parent), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


class Session:
    """Runs a prepared request. ``sinks`` (console, reports) receive every event."""

    def __init__(
        self,
        prepared: Prepared,
        *,
        sinks: Sequence[EventSink],
        live: LiveFactory,
        announce: Announce | None = None,
    ) -> None:
        self.prepared = prepared
        self.sinks = list(sinks)
        self.live = live
        self.announce = announce
        self.run_id = new_run_id()
        self.operator = operator_name()
        self.pool = TransportPool(
            accept_new_host_keys=prepared.request.accept_new_host_keys,
            passphrase=prepared.secrets.get(SSH_PASSPHRASE_SECRET),
        )
        self.audit: AuditLog | None = None
        self.state: StateSink | None = None
        self.locks: list[tuple[RunLock, LockHolder]] = []
        self.chain_head: str | None = None

    def run(self) -> RunReport:
        request, prepared = self.prepared.request, self.prepared
        state_dir = ensure_state_dir(request.state_dir)
        if request.mode == "resume" and request.resumed_from:
            claim_resume(state_dir, request.resumed_from, self.run_id)
        self.audit = AuditLog.open(state_dir, key=key_from_env(), run_id=self.run_id)
        try:
            self.state = StateSink(state_dir, self.run_id)
            sink = MultiSink(
                AuditSink(self.audit, run_id=self.run_id),
                self.state,
                *self.sinks,
                masker=prepared.masker,  # secrets are masked once, for every sink
            )
            return self._run(sink, state_dir)
        finally:
            self.pool.close()
            if self.state is not None:
                self.state.close()
            self.chain_head = self.audit.head_hash
            self.audit.close()

    def _run(self, sink: MultiSink, state_dir: Path) -> RunReport:
        prepared, request = self.prepared, self.prepared.request
        _record_start(sink, prepared, self.run_id, mode=request.mode)
        for warning in prepared.warnings:
            sink.emit(Notice(kind="warning", message=warning))
        for kind, message in request.notices:
            sink.emit(Notice(kind=kind, message=message))
        if request.mode == "resume":
            for host, done in _done_by_host(request.completed).items():
                sink.emit(
                    Notice(
                        kind="resume.skipped",
                        host=host,
                        message=f"{host}: done by run {request.resumed_from} and"
                        f" earlier, not repeated: {', '.join(done)}",
                    )
                )
        sink.barrier()
        try:
            hosts = self._host_states(sink)
        except (KeyboardInterrupt, Terminated) as exc:
            return _interrupted_before_start(sink, exc)
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
            yes=request.yes, approve=request.approve, sink=sink, operator=self.operator
        )
        stepper = Stepper(
            contexts=contexts,
            masker=prepared.masker,
            sink=sink,
            approver=approver,
            live=self.live,
            local_transport=LocalTransport("local"),
            base_dir=request.runbook.parent,
            announce=self.announce,
        )
        executor = Executor(
            prepared.runbook,
            hosts,
            stepper=stepper,
            sink=sink,
            options=request.options,
            acquire_locks=lambda: self._acquire_locks(state_dir, hosts, sink),
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

    def _acquire_locks(
        self, state_dir: Path, hosts: list[HostState], sink: MultiSink
    ) -> None:
        """The controller's lock, then each host's, in one global order (by address
        and port, whatever order the inventory lists them in), so two controllers
        never each hold part of the set. Each lock is registered before it is taken,
        so however the run ends, release finds it (release removes only our own)."""
        name = self.prepared.runbook.lock
        if not name:
            return
        owner = LockHolder.current(run_id=self.run_id, operator=self.operator)
        for where, lock in self._locks_in_order(state_dir, name, hosts):
            self.locks.append((lock, owner))
            try:
                lock.acquire(owner)
            except TransportError as exc:
                raise NoGoError(f"cannot take lock {name!r} on {where}: {exc}") from exc
        sink.emit(Notice(kind="lock.acquired", message=f"lock {name!r} acquired"))

    def _locks_in_order(
        self, state_dir: Path, name: str, hosts: list[HostState]
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
        locks: list[tuple[str, RunLock]] = [
            ("this controller", LocalLock(state_dir, name))
        ]
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


def _record_start(
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


def claim_resume(state_dir: Path, run_id: str, by: str) -> None:
    """A run is resumed once: a second `resume` of the same id would repeat the steps
    the first resume did. The claim is atomic (O_EXCL)."""
    from .state import runs_dir

    marker = runs_dir(state_dir) / f"{run_id}.resumed-by"
    marker.parent.mkdir(mode=0o700, exist_ok=True)
    try:
        fd = os.open(
            marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
        )
    except FileExistsError:
        first = marker.read_text(encoding="utf-8", errors="replace").strip()
        raise ResumeError(
            f"run {run_id} was already resumed as run {first}: resume that one"
        ) from None
    with os.fdopen(fd, "w") as handle:
        handle.write(by + "\n")


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


def plan_runbook(prepared: Prepared, *, probe: bool = False) -> list[Any]:
    """The plan of a prepared request. Nothing runs, unless ``probe``: then the
    ``safe: true`` steps really run (so later steps render with real values), under
    a run of mode ``plan`` in the audit log, each probe recorded like any step."""
    from .plan import build_plan

    if not probe:
        with _planning(prepared, _NullSink(), "plan") as (hosts, stepper):
            return build_plan(prepared.runbook.phases, hosts, stepper, probe=None)
    state_dir = ensure_state_dir(prepared.request.state_dir)
    run_id = new_run_id()
    audit = AuditLog.open(state_dir, key=key_from_env(), run_id=run_id)
    sink = MultiSink(AuditSink(audit, run_id=run_id), masker=prepared.masker)
    began = time.monotonic()
    status = RunStatus.FAILED
    try:
        _record_start(sink, prepared, run_id, mode="plan")
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


def plan_rollback(prepared: Prepared) -> list[tuple[str, str, str]]:
    """What ``runbook rollback RUN_ID`` would run, per host, newest first, as
    (host, step id, undo): each undo rendered as far as its saved results allow,
    then the runbook's ``rollback:`` steps. Nothing runs."""
    from .plan import describe_undo

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
                    (host.name, step.id, f"rollback step: {step.action.describe()}")
                    for step in prepared.runbook.steps_of(Phase.ROLLBACK)
                ]
    return rows
