"""One invocation of ``run`` / ``check`` / ``drill`` / ``resume``: load and check every
input (exit 2 before anything runs), open the state dir and audit log (exit 4 when
unusable), take locks, connect, run the executor, close everything.

This is the only place that knows how the pieces fit together; the CLI builds a
``RunRequest`` and prints what comes back.
"""

from __future__ import annotations

import getpass
import os
import secrets as random_tokens
import socket
import subprocess
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
    TransportError,
)
from ..record.audit import AuditLog, key_from_env
from ..record.auditsink import AuditSink
from ..record.events import EventSink, HostConnected, MultiSink, Notice, RunStarted
from ..secrets import Masker, read_secrets
from ..spec.build import load_runbook
from ..spec.inventory import Host, Inventory, load_inventory
from ..spec.loader import load_mapping_file
from ..spec.params import resolve_params
from ..statedir import ensure_state_dir
from ..transports.local import LocalTransport
from ..transports.pool import TransportPool
from .approval import TerminalApprover
from .executor import Executor, RunOptions, RunReport
from .hosts import ContextBuilder, HostState, RunInfo
from .locks import LocalLock, LockHolder, RemoteLock
from .state import StateSink
from .stepper import LiveFactory, Stepper

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from ..record.results import StepResult
    from ..spec.model import Runbook

# a runbook secret with this name unlocks encrypted SSH identity files
SSH_PASSPHRASE_SECRET = "ssh_passphrase"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRequest:
    runbook: Path
    assignments: Mapping[str, str] = field(default_factory=dict)
    params_file: Path | None = None
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
    if request.options.start_at and runbook.step(request.options.start_at) is None:
        raise InputError(
            f"--start-at: no step {request.options.start_at!r} in {runbook.path}"
        )
    if request.options.fail_at and runbook.step(request.options.fail_at) is None:
        raise InputError(
            f"--fail-at: no step {request.options.fail_at!r} in {runbook.path}"
        )
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


def _params(runbook: Runbook, request: RunRequest) -> dict[str, Any]:
    given: dict[str, Any] = dict(request.given_params or {})
    positions = {}
    if request.params_file is not None:
        loaded = load_mapping_file(request.params_file)
        given.update(loaded.data)
        positions = {name: loaded.positions.key((name,)) for name in loaded.data}
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
        self, prepared: Prepared, *, sinks: Sequence[EventSink], live: LiveFactory
    ) -> None:
        self.prepared = prepared
        self.sinks = list(sinks)
        self.live = live
        self.run_id = new_run_id()
        self.operator = operator_name()
        self.pool = TransportPool(
            accept_new_host_keys=prepared.request.accept_new_host_keys,
            passphrase=prepared.secrets.get(SSH_PASSPHRASE_SECRET),
        )
        self.audit: AuditLog | None = None
        self.state: StateSink | None = None
        self.locks: list[tuple[Any, LockHolder]] = []
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
        sink.emit(
            RunStarted(
                runbook=str(request.runbook),
                runbook_name=prepared.runbook.name,
                runbook_sha256=prepared.runbook.sha256,
                git_commit=git_commit(request.runbook.resolve()),
                params=dict(prepared.params),
                operator=self.operator,
                command_line=request.command_line,
                hosts=[h.name for h in prepared.hosts],
                inventory=None if request.inventory is None else str(request.inventory),
                limit=request.limit,
                resumed_from=request.resumed_from,
                mode=request.mode,
            )
        )
        for warning in prepared.warnings:
            sink.emit(Notice(kind="warning", message=warning))
        sink.barrier()
        hosts = self._host_states(sink)
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
            for (host_name, _), result in request.completed.items():
                if host_name == host.name:
                    step = self.prepared.runbook.step(result.step_id)
                    if step is not None:
                        state.record(step, result, in_saga=True)
                        state.started = True
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
        name = self.prepared.runbook.lock
        if not name:
            return
        owner = LockHolder.current(run_id=self.run_id, operator=self.operator)
        local = LocalLock(state_dir, name)
        local.acquire(owner)
        self.locks.append((local, owner))
        inventory = self.prepared.request.inventory
        by_name = {h.name: h for h in self.prepared.hosts}
        for state in hosts:
            if isinstance(state.transport, LocalTransport):
                continue
            lock = RemoteLock(
                state.transport,
                name,
                lock_dir=by_name[state.name].lock_dir,
                inventory=None if inventory is None else str(inventory),
            )
            try:
                lock.acquire(owner)
            except TransportError as exc:
                raise NoGoError(
                    f"cannot take lock {name!r} on {state.name}: {exc}"
                ) from exc
            self.locks.append((lock, owner))
        sink.emit(Notice(kind="lock.acquired", message=f"lock {name!r} acquired"))

    def _release_locks(self) -> None:
        for lock, owner in reversed(self.locks):
            try:
                lock.release(owner)
            except Exception:
                pass
        self.locks.clear()


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


def plan_runbook(prepared: Prepared) -> list[Any]:
    """The plan of a prepared request; only ``safe: true`` steps run."""
    from .plan import build_plan

    session = Session(prepared, sinks=[], live=lambda host, step: None)
    sink = _NullSink()
    try:
        hosts = [
            HostState(
                name=h.name,
                address=h.address,
                host_vars=h.vars,
                transport=session.pool.get(h),
            )
            for h in prepared.hosts
        ]
        contexts = ContextBuilder(
            params=prepared.params,
            secrets=prepared.secrets,
            run=RunInfo(
                id="plan",
                operator=session.operator,
                started_at="plan",
                runbook_dir=str(prepared.request.runbook.resolve().parent),
            ),
        )
        approver = TerminalApprover(
            yes=False, approve=frozenset(), sink=sink, operator=session.operator
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
        return build_plan(prepared.runbook.phases, hosts, stepper)
    finally:
        session.pool.close()
