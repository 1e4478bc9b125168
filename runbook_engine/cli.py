"""The ``runbook`` command. The only place that prints final errors and picks exit
codes; heavy modules are imported inside commands so ``runbook --version`` stays fast.

Exit codes (one table, see ``errors.ExitCode``): 0 succeeded; 1 a step failed (any
rollback completed); 2 invalid input, nothing ran; 3 a human must look (rollback failed
or the audit log stopped being writable); 4 refused, nothing changed (no-go, approval
refused, lock held, audit log unusable); 70 internal error; 130 interrupted (SIGINT);
143 terminated (SIGTERM).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from . import __version__
from .errors import ExitCode, InputError, RunbookError

if TYPE_CHECKING:
    from collections.abc import Callable

    from .engine.executor import RunReport
    from .engine.session import Prepared, RunRequest
    from .secrets import Masker


class _Invocation:
    """What the crash handler needs to write a masked crash file."""

    masker: Masker | None = None
    state_dir: Path | None = None
    run_id: str | None = None


_INVOCATION = _Invocation()


def main() -> None:
    # a file size limit must fail the write (EFBIG, reported), not kill the process
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.INVALID)
    except RunbookError as exc:
        _print_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        sys.exit(ExitCode.FAILED)
    except Exception:
        _crash()
    sys.exit(ExitCode.OK)


def _print_error(exc: RunbookError) -> None:
    diagnostics = getattr(exc, "diagnostics", None)
    if diagnostics:
        from .spec.diagnostics import format_text

        click.echo(format_text(diagnostics), err=True)
        errors = sum(1 for d in diagnostics if d.severity == "error")
        if errors:
            click.echo(f"{errors} error(s); nothing ran", err=True)
        return
    message = str(exc)
    if _INVOCATION.masker is not None:
        message = _INVOCATION.masker.mask(message)
    click.echo(f"error: {message}", err=True)


def _crash() -> NoReturn:
    text = traceback.format_exc()
    if _INVOCATION.masker is not None:
        text = _INVOCATION.masker.mask(text)
    where = None
    try:
        from .engine.statedir import default_state_dir, ensure_state_dir

        state_dir = ensure_state_dir(_INVOCATION.state_dir or default_state_dir())
        where = state_dir / f"crash-{_INVOCATION.run_id or os.getpid()}.log"
        fd = os.open(
            where, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600
        )
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    except Exception:
        where = None
    click.echo(
        "internal error: this is a bug in runbook, not in your runbook. Nothing more"
        " will run. Please report it with the crash file"
        + (f": {where}" if where else " (could not write the crash file)"),
        err=True,
    )
    sys.exit(ExitCode.INTERNAL)


# -- shared options --------------------------------------------------------------------


def _state_dir(value: str | None) -> Path:
    from .engine.statedir import default_state_dir

    path = Path(value).expanduser() if value else default_state_dir()
    _INVOCATION.state_dir = path
    return path


def _run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "-e",
            "--extra",
            "assignments",
            multiple=True,
            metavar="KEY=VALUE",
            help="Set a param (repeatable). Values are coerced to the declared type.",
        ),
        click.option(
            "--params-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="YAML or JSON mapping of params.",
        ),
        click.option(
            "-i",
            "--inventory",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Inventory file (hosts, groups, connection settings).",
        ),
        click.option(
            "--limit",
            metavar="PATTERN",
            help="Narrow the runbook's hosts to this pattern.",
        ),
        click.option(
            "--state-dir",
            "state_dir",
            metavar="DIR",
            envvar="RUNBOOK_STATE_DIR",
            help="Audit log and run state"
            " (default ${XDG_STATE_HOME:-~/.local/state}/runbook).",
        ),
        click.option(
            "--yes", is_flag=True, help="Approve every approve: step (audited)."
        ),
        click.option(
            "--approve",
            "approve",
            multiple=True,
            metavar="STEP_ID",
            help="Approve this approve: step (repeatable, audited).",
        ),
        click.option(
            "--forks",
            type=click.IntRange(1, 1000),
            default=20,
            show_default=True,
            help="Hosts run in parallel.",
        ),
        click.option(
            "--accept-new-host-keys",
            is_flag=True,
            help="Add unknown SSH host keys to known_hosts (audited)."
            " Changed keys are always refused.",
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
        click.option(
            "-q", "--quiet", is_flag=True, help="Only failures and the result."
        ),
        click.option("-v", "--verbose", is_flag=True, help="More detail per step."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _request(runbook: Path, kw: dict[str, Any], **extra: Any) -> RunRequest:
    from .engine.executor import RunOptions
    from .engine.session import RunRequest
    from .spec.params import parse_assignments

    options = RunOptions(forks=kw["forks"], **extra.pop("options", {}))
    return RunRequest(
        runbook=runbook,
        assignments=parse_assignments(kw["assignments"]),
        params_file=kw["params_file"],
        inventory=kw["inventory"],
        limit=kw["limit"],
        state_dir=_state_dir(kw["state_dir"]),
        options=options,
        yes=kw["yes"],
        approve=frozenset(kw["approve"]),
        accept_new_host_keys=kw["accept_new_host_keys"],
        command_line=shlex.join(["runbook", *sys.argv[1:]]),
        **extra,
    )


def _verbosity(kw: dict[str, Any]) -> int:
    return -1 if kw["quiet"] else (1 if kw["verbose"] else 0)


EXIT_FOR_STATUS = {
    "succeeded": ExitCode.OK,
    "failed": ExitCode.FAILED,
    "rolled_back": ExitCode.FAILED,
    "rollback_failed": ExitCode.ROLLBACK_FAILED,
    "no_go": ExitCode.NO_GO,
    "interrupted": ExitCode.INTERRUPTED,
}


def exit_code_for(report: RunReport) -> ExitCode:
    if report.audit_failed:
        return ExitCode.ROLLBACK_FAILED
    if report.interrupted_by == "SIGTERM":
        return ExitCode.TERMINATED
    return EXIT_FOR_STATUS[report.status.value]


def _prepare(request: RunRequest) -> Prepared:
    from .engine.session import prepare

    prepared = prepare(request)
    _INVOCATION.masker = prepared.masker
    return prepared


def _execute(prepared: Prepared, kw: dict[str, Any]) -> tuple[RunReport, Any]:
    """Run with console, collector and reports; returns the report and the collector."""
    from .engine.executor import Terminated
    from .engine.session import Session
    from .record.collector import Collector
    from .record.console import Console

    reports = _parse_reports(kw.get("reports") or ())
    console = Console(verbosity=_verbosity(kw))
    collector = Collector(prepared.masker)
    session = Session(prepared, sinks=[console, collector], live=console.live)
    _INVOCATION.run_id = session.run_id
    collector.run_id = session.run_id

    def on_term(signum: int, frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        report = session.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if session.state is not None and session.state.failure:
        click.echo(f"warning: {session.state.failure}", err=True)
    _write_reports(reports, collector.records, session.run_id, session.chain_head)
    if kw.get("output") == "json":
        click.echo(
            json.dumps(_summary(session.run_id, report, collector.records), indent=2)
        )
    return report, collector


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
        "needs_attention": report.needs_attention,
    }


_FORMATS = ("json", "junit", "markdown", "html")


def _parse_reports(values: tuple[str, ...] | list[str]) -> list[tuple[str, Path]]:
    formats = _FORMATS
    parsed = []
    for value in values:
        kind, sep, path = value.partition(":")
        if not sep or kind not in formats or not path:
            raise InputError(
                f"--report {value!r}: expected FORMAT:PATH with FORMAT one of"
                f" {', '.join(formats)}"
            )
        parsed.append((kind, Path(path)))
    return parsed


def _write_reports(
    reports: list[tuple[str, Path]],
    records: list[dict[str, Any]],
    run_id: str,
    chain_head: str | None,
) -> None:
    if not reports:
        return
    from .record import reports as report_formats

    for kind, path in reports:
        report_formats.write(kind, path, records, chain_head=chain_head, run_id=run_id)
        click.echo(f"report: {kind} written to {path}", err=True)


def _finish(report: RunReport) -> NoReturn:
    sys.exit(exit_code_for(report))


# -- commands --------------------------------------------------------------------------


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="runbook")
def cli() -> None:
    """Declarative runbooks: validate, plan, run, check, drill, resume, roll back,
    audit."""


@cli.command()
@click.argument("runbook", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--start-at", metavar="STEP_ID", help="Start a fresh run at this step.")
@click.option(
    "--no-rollback", is_flag=True, help="Do not roll back on failure (audited)."
)
@click.option(
    "--rollback-scope",
    type=click.Choice(["all", "failed"]),
    default="all",
    show_default=True,
    help="Roll back every host the run changed, or only failed hosts.",
)
@_run_options
def run(
    runbook: Path,
    start_at: str | None,
    no_rollback: bool,
    rollback_scope: str,
    **kw: Any,
) -> None:
    """Run RUNBOOK: preconditions, steps, verify, rollback on failure, finally.

    \b
    Example:
      runbook run runbooks/release.yaml -e version=1.1.0
    """
    request = _request(
        runbook,
        kw,
        options={
            "start_at": start_at,
            "no_rollback": no_rollback,
            "rollback_scope": rollback_scope,
        },
    )
    report, _ = _execute(_prepare(request), kw)
    _finish(report)


@cli.command()
@click.argument("runbook", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_run_options
def check(runbook: Path, **kw: Any) -> None:
    """Run only the preconditions of RUNBOOK and print the go / no-go table.

    Exit 0 for GO, 4 for NO-GO.
    """
    request = _request(runbook, kw, options={"check_only": True}, mode="check")
    report, _ = _execute(_prepare(request), kw)
    _finish(report)


@cli.command()
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="github: GitHub Actions annotations.",
)
@click.option("--strict", is_flag=True, help="Lint rules too; warnings fail the check.")
@click.option(
    "-i",
    "--inventory",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Check hosts: patterns against this inventory.",
)
def validate(
    paths: tuple[Path, ...], fmt: str, strict: bool, inventory: Path | None
) -> None:
    """Check runbooks and inventories (directories are searched for *.yaml / *.yml).

    Exit 0 when every file is valid, 2 otherwise.
    """
    from .spec import checking
    from .spec.diagnostics import format_github, format_json, format_text

    files = checking.expand_paths(paths)
    diagnostics, counted = checking.check_files(
        files, strict=strict, inventory=inventory
    )
    formatter = {"text": format_text, "json": format_json, "github": format_github}[fmt]
    if diagnostics or fmt == "json":
        click.echo(formatter(diagnostics))
    errors = sum(1 for d in diagnostics if d.severity == "error")
    warnings = len(diagnostics) - errors
    if fmt == "text":
        click.echo(
            f"{counted} file(s) checked: {errors} error(s), {warnings} warning(s)",
            err=True,
        )
    if errors or (strict and warnings):
        sys.exit(ExitCode.INVALID)


@cli.command()
@click.argument(
    "kind", type=click.Choice(["runbook", "inventory", "report"]), default="runbook"
)
def schema(kind: str) -> None:
    """Print the JSON schema of runbooks (default), inventories or JSON reports."""
    from importlib import resources

    text = (
        resources.files("runbook_engine")
        .joinpath(f"schemas/{kind}.schema.json")
        .read_text("utf-8")
    )
    click.echo(text, nl=not text.endswith("\n"))


@cli.command()
@click.argument("runbook", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--fail-at",
    metavar="STEP_ID",
    help="Force a failure right after this step (default: the last step).",
)
@_run_options
def drill(runbook: Path, fail_at: str | None, **kw: Any) -> None:
    """Rehearse a rollback for real: checks, steps, a forced failure, the real
    rollback, the checks again. PASS (exit 0) when the rollback was clean and every
    check answers as before; FAIL (exit 1) otherwise.

    `--report PATH` (no FORMAT:) writes the drill report itself as JSON; the
    run reports (FORMAT:PATH) work as for `run`.

    \b
    Example:
      runbook drill runbooks/release.yaml -e version=1.2.0 --report drill.json
    """
    from .record.drill import format_drill

    drill_paths = [
        Path(v) for v in kw["reports"] if v.partition(":")[0] not in _FORMATS
    ]
    kw["reports"] = [v for v in kw["reports"] if v.partition(":")[0] in _FORMATS]

    if fail_at is None:
        from .spec.build import load_runbook
        from .spec.model import Phase

        steps = load_runbook(runbook).steps_of(Phase.STEPS)
        fail_at = steps[-1].id
    request = _request(runbook, kw, options={"fail_at": fail_at}, mode="drill")
    report, _ = _execute(_prepare(request), kw)
    if report.drill is None:
        click.echo(
            f"drill FAIL: the run ended {report.status.value}"
            " before the drill could start"
            + (f" ({report.message})" if report.message else ""),
            err=True,
        )
        sys.exit(
            exit_code_for(report)
            if report.status.value != "succeeded"
            else ExitCode.FAILED
        )
    click.echo(format_drill(report.drill), err=True)
    for path in drill_paths:
        record = {"event": report.drill.name, **report.drill.record()}
        path.write_text(json.dumps(record, indent=2, default=str) + "\n")
        click.echo(f"drill report written to {path}", err=True)
    sys.exit(ExitCode.OK if report.drill.passed else ExitCode.FAILED)


@cli.command()
@click.argument("run_id")
@click.option(
    "--force", is_flag=True, help="Resume even though the runbook file changed since."
)
@click.option("--state-dir", "state_dir", metavar="DIR", envvar="RUNBOOK_STATE_DIR")
@click.option("--yes", is_flag=True)
@click.option("--approve", "approve", multiple=True, metavar="STEP_ID")
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
@click.option("--report", "reports", multiple=True, metavar="FORMAT:PATH")
@click.option("-q", "--quiet", is_flag=True)
@click.option("-v", "--verbose", is_flag=True)
def resume(run_id: str, force: bool, **kw: Any) -> None:
    """Continue a failed or interrupted run from the first unfinished step on each
    host, under a new run id linked to the old one. Secrets are read again."""
    request = _saved_request(run_id, kw, force=force, mode="resume")
    report, _ = _execute(_prepare(request), kw)
    _finish(report)


@cli.command(name="rollback")
@click.argument("run_id")
@click.option(
    "--force",
    is_flag=True,
    help="Roll back even though the runbook file changed since.",
)
@click.option("--state-dir", "state_dir", metavar="DIR", envvar="RUNBOOK_STATE_DIR")
@click.option("--yes", is_flag=True)
@click.option("--approve", "approve", multiple=True, metavar="STEP_ID")
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
@click.option("--report", "reports", multiple=True, metavar="FORMAT:PATH")
@click.option("-q", "--quiet", is_flag=True)
@click.option("-v", "--verbose", is_flag=True)
def rollback_run(run_id: str, force: bool, **kw: Any) -> None:
    """Run the undos of what run RUN_ID completed, newest first, then the runbook's
    rollback steps."""
    request = _saved_request(run_id, kw, force=force, mode="rollback")
    report, _ = _execute(_prepare(request), kw)
    _finish(report)


def _saved_request(
    run_id: str, kw: dict[str, Any], *, force: bool, mode: str
) -> RunRequest:
    import hashlib

    from .engine.executor import RunOptions
    from .engine.session import RunRequest
    from .engine.state import load_saved_run
    from .errors import ResumeError

    state_dir = _state_dir(kw["state_dir"])
    saved = load_saved_run(state_dir, run_id)
    status = saved.status.value if saved.status else "interrupted (never finished)"
    if mode == "resume" and status in ("succeeded", "rolled_back", "rollback_failed"):
        hint = (
            "" if status == "succeeded" else f"; it was rolled back (status {status})"
        )
        raise ResumeError(
            f"run {run_id} cannot be resumed: it"
            f" {'succeeded' if status == 'succeeded' else 'ended'}{hint}"
        )
    if mode == "rollback" and status == "rolled_back":
        raise ResumeError(f"run {run_id} was already rolled back")
    path = Path(saved.runbook)
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ResumeError(
            f"run {run_id}: cannot read its runbook {path}: {exc.strerror}"
        ) from None
    if digest != saved.header.get("runbook_sha256") and not force:
        raise ResumeError(
            f"run {run_id}: runbook {path} changed since the run (sha256 differs);"
            f" use --force to {mode} anyway"
        )
    options = RunOptions(
        skip=frozenset(saved.results), rollback_only=mode == "rollback"
    )
    inventory = saved.header.get("inventory")
    return RunRequest(
        runbook=path,
        given_params=saved.header.get("params") or {},
        inventory=Path(inventory) if inventory else None,
        limit=saved.header.get("limit"),
        state_dir=state_dir,
        options=options,
        yes=kw["yes"],
        approve=frozenset(kw["approve"]),
        mode=mode,
        resumed_from=run_id,
        command_line=shlex.join(["runbook", *sys.argv[1:]]),
        completed=saved.results,
    )


@cli.command()
@click.argument("runbook", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-e", "--extra", "assignments", multiple=True, metavar="KEY=VALUE")
@click.option("--params-file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-i", "--inventory", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--limit", metavar="PATTERN")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown"]),
    default="text",
    show_default=True,
)
@click.option("--accept-new-host-keys", is_flag=True)
def plan(runbook: Path, fmt: str, **kw: Any) -> None:
    """Show what RUNBOOK would run where, rendered as far as possible. Changes
    nothing (steps marked safe: true really run, to render later steps).

    \b
    Example:
      runbook plan runbooks/release.yaml -e version=1.1.0 --format markdown
    """
    from .engine.session import plan_runbook
    from .record.planview import format_plan

    kw.update(state_dir=None, yes=False, approve=(), forks=20)
    request = _request(runbook, kw)
    prepared = _prepare(request)
    click.echo(format_plan(prepared, plan_runbook(prepared), fmt))


@cli.command()
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    metavar="FILE|DIR",
    help="A file (one runbook) or a directory (one page each + index.md).",
)
def docs(paths: tuple[Path, ...], output: Path | None) -> None:
    """Render runbooks as Markdown for review: params, secret names, go/no-go
    checklist, steps, rollback and a Mermaid flowchart.

    \b
    Examples:
      runbook docs runbooks/release.yaml
      runbook docs runbooks/ --output docs/runbooks/
    """
    from .record.docs import render_docs, write_docs
    from .spec.build import load_runbook

    if output is None:
        if len(paths) != 1 or not paths[0].is_file():
            raise InputError("runbook docs DIR needs --output DIR")
        click.echo(render_docs(load_runbook(paths[0])), nl=False)
        return
    for written in write_docs(list(paths), output):
        click.echo(f"wrote {written}", err=True)


@cli.group()
def audit() -> None:
    """Read and verify the audit log."""


@audit.command(name="list")
@click.option("--state-dir", "state_dir", metavar="DIR", envvar="RUNBOOK_STATE_DIR")
@click.option(
    "-n", "--last", default=20, show_default=True, help="How many recent runs."
)
def audit_list(state_dir: str | None, last: int) -> None:
    """Recent runs: id, runbook, operator, status, start, duration."""
    from .record.audit import AUDIT_FILE, list_runs
    from .units import format_duration

    path = _state_dir(state_dir) / AUDIT_FILE
    if not path.exists():
        click.echo(f"no runs recorded yet ({path} does not exist)", err=True)
        return
    runs = list_runs(path)[-last:]
    click.echo(
        f"{'RUN ID':<24} {'RUNBOOK':<28} {'OPERATOR':<22} {'STATUS':<16}"
        f" {'STARTED':<24} DURATION"
    )
    for run_summary in runs:
        duration = (
            "-"
            if run_summary.duration is None
            else format_duration(run_summary.duration)
        )
        click.echo(
            f"{run_summary.run_id:<24} {run_summary.runbook[-28:]:<28}"
            f" {run_summary.operator[:22]:<22}"
            f" {run_summary.status or 'unfinished':<16}"
            f" {run_summary.started_at:<24} {duration}"
        )


@audit.command(name="show")
@click.argument("run_id")
@click.option("--state-dir", "state_dir", metavar="DIR", envvar="RUNBOOK_STATE_DIR")
@click.option(
    "--json", "as_json", is_flag=True, help="The run's records as JSON lines."
)
@click.option(
    "--report",
    "reports",
    multiple=True,
    metavar="FORMAT:PATH",
    help="Write a report of this past run: json, junit, markdown or html.",
)
def audit_show(
    run_id: str, state_dir: str | None, as_json: bool, reports: tuple[str, ...]
) -> None:
    """A past run as a readable timeline."""
    import hashlib

    from .record.audit import AUDIT_FILE, read_records
    from .record.timeline import format_timeline

    parsed = _parse_reports(reports)
    path = _state_dir(state_dir) / AUDIT_FILE
    records: list[dict[str, Any]] = []
    chain_head = None  # the hash of this run's last record line, as the next prev_hash
    for line in read_records(path) if path.exists() else ():
        if (
            line.record is not None
            and line.terminated
            and line.record.get("run_id") == run_id
        ):
            records.append(line.record)
            chain_head = hashlib.sha256(line.raw).hexdigest()
    if not records:
        raise InputError(
            f"no run {run_id!r} in the audit log (see `runbook audit list`)"
        )
    if as_json:
        for record in records:
            click.echo(json.dumps(record, ensure_ascii=False))
    else:
        click.echo(format_timeline(records))
    _write_reports(parsed, records, run_id, chain_head)


@audit.command(name="verify")
@click.option("--state-dir", "state_dir", metavar="DIR", envvar="RUNBOOK_STATE_DIR")
def audit_verify(state_dir: str | None) -> None:
    """Check the whole hash chain (and HMACs when RUNBOOK_AUDIT_KEY is set).

    Exit 0 when intact (a torn last line from a crash is reported, not an error),
    1 with the first bad line otherwise. Prints the head hash to keep elsewhere.
    """
    from .record.audit import AUDIT_FILE, key_from_env, verify

    path = _state_dir(state_dir) / AUDIT_FILE
    if not path.exists():
        raise InputError(f"no audit log at {path}")
    result = verify(path, key_from_env())
    if result.truncated_line is not None:
        click.echo(
            f"{path}:{result.truncated_line}: truncated last line"
            " (a crash mid-write, not an edit);"
            " the next run records it as audit.repaired",
            err=True,
        )
    if not result.ok:
        click.echo(
            f"{path}:{result.first_bad_line}: chain broken: {result.reason}", err=True
        )
        sys.exit(ExitCode.FAILED)
    keyed = " and HMAC" if result.keyed else ""
    click.echo(f"ok: {result.records} records, hash chain{keyed} intact", err=True)
    click.echo(f"head {result.head_hash}")


@cli.command()
@click.argument("name")
@click.option("-i", "--inventory", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--host", "hosts", multiple=True, help="Break the lock on this inventory host."
)
@click.option(
    "--force", metavar="RUN_ID", help="Break a lock whose holder is alive: its run id."
)
@click.option("--state-dir", "state_dir", metavar="DIR", envvar="RUNBOOK_STATE_DIR")
@click.option("--accept-new-host-keys", is_flag=True)
def unlock(
    name: str,
    inventory: Path | None,
    hosts: tuple[str, ...],
    force: str | None,
    state_dir: str | None,
    accept_new_host_keys: bool,
) -> None:
    """Break lock NAME (audited). A stale lock breaks as is; a live holder needs
    --force RUN_ID (the holder's run id)."""
    from .engine.unlocking import unlock_locks

    for line in unlock_locks(
        name,
        inventory=inventory,
        hosts=hosts,
        force=force,
        state_dir=_state_dir(state_dir),
        accept_new_host_keys=accept_new_host_keys,
    ):
        click.echo(line, err=True)
