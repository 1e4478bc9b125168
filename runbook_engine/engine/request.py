"""What a run is asked to do, checked before anything runs: the ``RunRequest`` the CLI
builds, and ``prepare``, which loads the runbook, params, secrets and inventory and
refuses (exit 2, nothing ran) anything that is wrong with them. Also who runs it
(``operator_name``), the run id and the runbook's git commit, for the audit log.
"""

from __future__ import annotations

import difflib
import getpass
import os
import secrets as random_tokens
import socket
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .. import render
from ..errors import InputError, RenderError
from ..record.forward import parse_target
from ..secrets import MASK, Masker, peek_secrets, read_secrets
from ..spec.build import load_runbook
from ..spec.inventory import Host, Inventory, load_inventory
from ..spec.loader import load_mapping_file
from ..spec.model import Phase
from ..spec.params import resolve_params
from .executor import RunOptions

if TYPE_CHECKING:
    from collections.abc import Mapping
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
    audit_forward: str | None = None  # syslog URL each audit record also goes to


@dataclass(slots=True, kw_only=True)
class Prepared:
    request: RunRequest
    runbook: Runbook
    params: dict[str, Any]
    secrets: dict[str, str]
    masker: Masker
    warnings: list[str]
    absent: list[str]  # optional secrets that are not there, and why
    inventory: Inventory
    hosts: list[Host]


def operator_name() -> str:
    explicit = os.environ.get("RUNBOOK_OPERATOR")
    if explicit:  # printable, one line: it is shown to other operators
        return explicit if explicit.isprintable() else ascii(explicit)[1:-1]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def new_run_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{random_tokens.token_hex(3)}"


def prepare(request: RunRequest, *, read_values: bool = True) -> Prepared:
    """Everything that can be wrong with the input, checked before anything runs.
    Without ``read_values`` (``runbook plan``, which runs nothing) no secret is read
    and no secret command runs: each secret is ``***``."""
    runbook = load_runbook(request.runbook)
    params = _params(runbook, request)
    if read_values:
        values, warnings, absent = read_secrets(runbook.secrets.values())
        masker = Masker.of(values)
    else:
        values, warnings, absent = dict.fromkeys(runbook.secrets, MASK), [], []
        masker = Masker(peek_secrets(runbook.secrets.values()))
    inventory = (
        load_inventory(request.inventory) if request.inventory else Inventory.local()
    )
    pattern = _hosts_pattern(runbook, params)
    hosts = inventory.resolve(pattern, request.limit)
    _check_step_options(runbook, request)
    if request.audit_forward:
        parse_target(request.audit_forward)  # a malformed URL is exit 2, now
    return Prepared(
        request=request,
        runbook=runbook,
        params=params,
        secrets=values,
        masker=masker,
        warnings=warnings,
        absent=absent,
        inventory=inventory,
        hosts=hosts,
    )


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _listed(ids: list[str], most: int = 20) -> str:
    shown = ", ".join(ids[:most])
    return shown + (f", ... ({len(ids) - most} more)" if len(ids) > most else "")


def _check_step_options(runbook: Runbook, request: RunRequest) -> None:
    """Flags that name steps must name real ones: exit 2 before anything runs."""
    named = [
        ("--start-at", request.options.start_at),
        ("--fail-at", request.options.fail_at),
    ]
    # only the forward path can be started at or failed after
    ids = [
        s.id for phase in (Phase.STEPS, Phase.VERIFY) for s in runbook.steps_of(phase)
    ]
    for flag, step_id in named:
        if step_id and step_id not in ids:
            step = runbook.step(step_id)
            problem = (
                f"no step {step_id!r} in {runbook.path}{_did_you_mean(step_id, ids)}"
                if step is None
                else f"step {step_id!r} is in {step.phase.value}:, not in steps: or"
                " verify:"
            )
            raise InputError(f"{flag}: {problem} (steps: {_listed(ids)})")
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
    names, values = {}, {}  # where each name and value is written in its file
    written: dict[str, str] = {}  # how, when YAML read it as something else
    for path in request.params_files:  # later files win, as later -e do
        loaded = load_mapping_file(path)
        given.update(loaded.data)
        for name in loaded.data:
            names[name] = loaded.positions.key((name,))
            values[name] = loaded.positions.value((name,))
            text = loaded.positions.source_text((name,))
            if text is None:
                written.pop(name, None)
            else:
                written[name] = text
    given.update(request.assignments)
    for name in request.assignments:  # -e wins over the file: no file position
        for where in (names, values, written):
            where.pop(name, None)
    return resolve_params(
        runbook.params,
        given,
        from_cli=frozenset(request.assignments),
        positions=names,
        value_positions=values,
        written=written,
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
