"""The ``runbook`` click group and what every command shares: the exit code table,
the state dir option, reports. Heavy modules are imported inside commands so
``runbook --version`` stays fast."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .. import __version__
from ..errors import ExitCode, ReportError
from .reporting import parse_reports, report_failure, write_reports

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..engine.executor import RunReport
    from ..engine.request import Prepared, RunRequest
    from ..engine.store import StateStore
    from ..secrets import Masker


class _Invocation:
    """What the crash handler needs to write a masked crash file."""

    masker: Masker | None = None
    state_dir: Path | None = None
    run_id: str | None = None


_INVOCATION = _Invocation()


# -- shared options --------------------------------------------------------------------


def _state_dir(value: str | None) -> Path:
    from ..statedir import default_state_dir

    path = Path(value).expanduser() if value else default_state_dir()
    _INVOCATION.state_dir = path
    return path


def _open_store(state_dir: str | None, state_url: str | None) -> StateStore:
    """The store ``--state URL`` (a database) or ``--state-dir DIR`` (files) names;
    close it (``with``) when done. A malformed URL or a database that cannot be
    reached is exit 2 before anything runs."""
    from ..engine.store import open_store

    store = open_store(_state_dir(state_dir), state_url or None)
    _tell_local_steps(store.state_dir, state_url or None)
    return store


def _tell_local_steps(state_dir: Path, state_url: str | None) -> None:
    """Local steps inherit this process's environment: give them the state in use
    (``RUNBOOK_STATE_DIR``, ``RUNBOOK_STATE_URL`` when it is a database) and
    ``RUNBOOK_CLI``, the command that runs this engine, so a step that reads the
    audit trail (``$RUNBOOK_CLI audit export``) reads the one this run writes,
    whichever backend, flag or config file chose it. SSH steps get none of it."""

    os.environ["RUNBOOK_STATE_DIR"] = str(state_dir)
    if state_url:
        os.environ["RUNBOOK_STATE_URL"] = state_url
    else:
        os.environ.pop("RUNBOOK_STATE_URL", None)
    os.environ["RUNBOOK_CLI"] = shlex.join([sys.executable, "-m", "runbook_engine"])


def _command_line() -> str:
    """This command as the audit log records it, any database password masked."""
    from ..engine.store import mask_url

    return mask_url(shlex.join(["runbook", *sys.argv[1:]]))


EXTRA_OPTION = click.option(
    "-e",
    "--extra",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE|@FILE",
    help="Set a param (repeatable). Values are coerced to the declared type; @FILE"
    " reads a YAML or JSON mapping of params, like --params-file.",
)
PARAMS_FILE_OPTION = click.option(
    "--params-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML or JSON mapping of params.",
)
INVENTORY_OPTION = click.option(
    "-i",
    "--inventory",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="RUNBOOK_INVENTORY",
    help="Inventory file (hosts, groups, connection settings); default"
    " $RUNBOOK_INVENTORY.",
)
LIMIT_OPTION = click.option(
    "--limit", metavar="PATTERN", help="Narrow the runbook's hosts to this pattern."
)
ACCEPT_KEYS_OPTION = click.option(
    "--accept-new-host-keys",
    is_flag=True,
    help="Add unknown SSH host keys to known_hosts (audited)."
    " Changed keys are always refused.",
)
STATE_DIR_OPTION = click.option(
    "--state-dir",
    "state_dir",
    metavar="DIR",
    envvar="RUNBOOK_STATE_DIR",
    help="Audit log and run state (default $RUNBOOK_STATE_DIR, else"
    " ${XDG_STATE_HOME:-~/.local/state}/runbook).",
)
STATE_URL_OPTION = click.option(
    "--state",
    "state_url",
    metavar="URL",
    envvar="RUNBOOK_STATE_URL",
    help="Keep the audit trail, run states, locks and approvals in a PostgreSQL"
    " database shared by a team: postgresql://USER@HOST/DB (default"
    " $RUNBOOK_STATE_URL; without one, files in the state dir). Give the password"
    " in ~/.pgpass or PGPASSWORD, not in the URL.",
)


def _state_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--state-dir and --state: what every command that reads or writes state takes."""
    return STATE_DIR_OPTION(STATE_URL_OPTION(func))


_INPUT_OPTIONS = [
    EXTRA_OPTION,
    PARAMS_FILE_OPTION,
    INVENTORY_OPTION,
    LIMIT_OPTION,
    click.option(
        "--forks",
        type=click.IntRange(1, 1000),
        default=20,
        show_default=True,
        help="Hosts run in parallel.",
    ),
    ACCEPT_KEYS_OPTION,
]
# what any command that runs steps takes, including resume and rollback
AUDIT_FORWARD_OPTION = click.option(
    "--audit-forward",
    "audit_forward",
    metavar="URL",
    envvar="RUNBOOK_AUDIT_FORWARD",
    help="Also send each audit record to syslog: syslog://HOST:PORT (UDP),"
    " syslog+tcp://HOST:PORT or unix:///dev/log. The local log stays the record.",
)
_SESSION_OPTIONS = [
    STATE_DIR_OPTION,
    STATE_URL_OPTION,
    AUDIT_FORWARD_OPTION,
    click.option("--yes", is_flag=True, help="Approve every approve: step (audited)."),
    click.option(
        "--approve",
        "approve",
        multiple=True,
        metavar="STEP_ID",
        help="Approve this approve: step (repeatable, audited).",
    ),
    click.option(
        "--output",
        type=click.Choice(["text", "json"]),
        default="text",
        help="json: a machine-readable summary on stdout.",
    ),
    click.option(
        "--report",
        "reports",
        multiple=True,
        metavar="FORMAT:PATH",
        help="Write a report: json, junit, markdown or html (repeatable).",
    ),
    click.option("-q", "--quiet", is_flag=True, help="Only failures and the result."),
    click.option(
        "-v",
        "--verbose",
        count=True,
        help="-v: each command as it starts; -vv: connections and host keys too.",
    ),
    click.option(
        "--color",
        "--colour",
        "colour",
        type=click.Choice(["auto", "always", "never"]),
        default="auto",
        show_default=True,
        help="auto: on a terminal, unless NO_COLOR is set.",
    ),
]


def _apply(options: list[Any], func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(options):
        func = option(func)
    return func


def _run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    return _apply(_INPUT_OPTIONS + _SESSION_OPTIONS, func)


def _session_options(func: Callable[..., Any]) -> Callable[..., Any]:
    return _apply(_SESSION_OPTIONS, func)


def _request(runbook: Path, kw: dict[str, Any], **extra: Any) -> RunRequest:
    from ..engine.executor import RunOptions
    from ..engine.request import RunRequest
    from ..spec.params import parse_assignments

    options = RunOptions(forks=kw["forks"], **extra.pop("options", {}))
    files = [Path(a[1:]) for a in kw["assignments"] if a.startswith("@")]
    pairs = [a for a in kw["assignments"] if not a.startswith("@")]
    if kw["params_file"] is not None:
        files.insert(0, kw["params_file"])
    return RunRequest(
        runbook=runbook,
        assignments=parse_assignments(pairs),
        params_files=tuple(files),
        inventory=kw["inventory"],
        limit=kw["limit"],
        state_dir=_state_dir(kw["state_dir"]),
        options=options,
        yes=kw["yes"],
        approve=frozenset(kw["approve"]),
        accept_new_host_keys=kw["accept_new_host_keys"],
        command_line=_command_line(),
        audit_forward=kw.get("audit_forward"),
        **extra,
    )


def _verbosity(kw: dict[str, Any]) -> int:
    return -1 if kw["quiet"] else min(int(kw["verbose"]), 2)


def _colour(kw: dict[str, Any]) -> bool | None:
    return {"always": True, "never": False}.get(kw.get("colour") or "auto")


EXIT_FOR_STATUS = {
    "succeeded": ExitCode.OK,
    "failed": ExitCode.FAILED,
    "rolled_back": ExitCode.FAILED,
    "rollback_failed": ExitCode.ROLLBACK_FAILED,
    "no_go": ExitCode.NO_GO,
    "interrupted": ExitCode.INTERRUPTED,
}


def exit_code_for(report: RunReport, mode: str = "run") -> ExitCode:
    """The exit code of a run. For `runbook rollback` (``mode="rollback"``), rolled
    back is what was asked: 0."""
    if mode == "rollback" and report.status.value == "rolled_back":
        return ExitCode.OK if not report.audit_failed else ExitCode.ROLLBACK_FAILED
    if report.audit_failed:
        return ExitCode.ROLLBACK_FAILED
    if report.interrupted_by == "SIGTERM":
        return ExitCode.TERMINATED
    if report.interrupted_by == "SIGHUP":
        return ExitCode.HANGUP
    return EXIT_FOR_STATUS[report.status.value]


def _prepare(request: RunRequest, *, read_values: bool = True) -> Prepared:
    from ..engine.request import prepare

    prepared = prepare(request, read_values=read_values)
    _INVOCATION.masker = prepared.masker
    return prepared


def _execute(
    prepared: Prepared, kw: dict[str, Any], store: StateStore | None = None
) -> tuple[RunReport, Any]:
    """Run with console, collector and reports in ``store`` (opened from the
    options when None); returns the report and the collector."""
    protected = (_state_dir(kw.get("state_dir")), prepared.request.runbook)
    reports = parse_reports(kw.get("reports") or (), protected)  # exit 2 now
    if store is None:
        with _open_store(kw["state_dir"], kw.get("state_url")) as opened:
            return _execute(prepared, kw, opened)
    _mask_state_password(prepared, kw.get("state_url"))
    from ..engine.executor import Terminated
    from ..engine.session import Session
    from ..record.collector import Collector
    from ..record.console import Console

    console = Console(verbosity=_verbosity(kw), colour=_colour(kw))
    collector = Collector()
    session = Session(
        prepared,
        store=store,
        sinks=[console, collector],
        live=console.live,
        announce=console.announce,
        warn=lambda text: console.message(f"warning: {text}"),
    )
    _INVOCATION.run_id = console.run_id = session.run_id

    def on_term(signum: int, frame: object) -> None:
        raise Terminated(signal.Signals(signum).name)

    # a closed terminal (SIGHUP) stops the run as carefully as SIGTERM does
    previous = {
        sig: signal.signal(sig, on_term) for sig in (signal.SIGTERM, signal.SIGHUP)
    }
    try:
        report = session.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if session.state is not None and session.state.failure:
        click.echo(f"warning: {session.state.failure}", err=True)
    failed = write_reports(
        reports, collector.records, session.run_id, session.chain_head
    )
    if kw.get("output") == "json":
        summary = _summary(session.run_id, report, collector.records)
        code = exit_code_for(report, prepared.request.mode)
        summary["exit_code"] = int(ReportError.exit_code if failed else code)
        click.echo(json.dumps(summary, indent=2))
    if failed:
        raise report_failure(session.run_id, failed)
    return report, collector


def _mask_state_password(prepared: Prepared, url: str | None) -> None:
    """The database password is masked like a secret (a step could print the
    RUNBOOK_STATE_URL it inherits)."""
    from ..engine.store import url_password
    from ..secrets import Masker

    password = url_password(url or "")
    if password:
        prepared.masker = Masker([*prepared.masker.values, password])
        _INVOCATION.masker = prepared.masker


def _summary(
    run_id: str, report: RunReport, records: list[dict[str, Any]]
) -> dict[str, Any]:
    steps = [
        {
            "host": r["host"],
            "step": r["step"],
            "phase": r["phase"],
            "status": r["status"],
            "rc": r["rc"],
            "attempts": r["attempt"],
            "duration_ms": r["duration_ms"],
        }
        for r in records
        if r["event"] == "step.finished"
    ]
    return {
        "run_id": run_id,
        "status": report.status.value,
        "exit_code": int(exit_code_for(report)),
        "duration_ms": int(report.duration * 1000),
        "hosts": report.hosts,
        "steps": steps,
        "message": report.message,
        "needs_attention": [asdict(item) for item in report.needs_attention],
    }


def _finish(report: RunReport, mode: str = "run") -> NoReturn:
    sys.exit(exit_code_for(report, mode))


class Interrupted(Exception):
    """Ctrl-C outside a run's own handling (loading, connecting, reading): the CLI
    says "interrupted" and exits 130."""


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # click would print a blank line and "Aborted!"
            raise Interrupted from None


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="runbook")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Declarative runbooks: validate, plan, run, check, drill, resume, roll back,
    audit.

    Defaults (inventory, forks, state dir, reports, color) can come from runbook.toml
    in the repository or ~/.config/runbook/config.toml; flags and RUNBOOK_* variables
    win over them.
    """
    from .config import default_map, find_files

    ctx.default_map = default_map(find_files())
