"""Commands that run a runbook: run, check, drill, resume, rollback."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import ExitCode

if TYPE_CHECKING:
    from ..engine.request import Prepared, RunRequest
    from ..engine.store import StateStore

from .app import (
    _command_line,
    _execute,
    _finish,
    _open_store,
    _prepare,
    _request,
    _run_options,
    _session_options,
    cli,
    exit_code_for,
)
from .reporting import FORMATS


@cli.command(short_help="Run a runbook (steps, verify, rollback, finally).")
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


@cli.command(short_help="Run only the preconditions: go / no-go.")
@click.argument("runbook", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_run_options
def check(runbook: Path, **kw: Any) -> None:
    """Run only the preconditions of RUNBOOK and print the go / no-go table.

    Exit 0 for GO, 4 for NO-GO.
    """
    request = _request(runbook, kw, options={"check_only": True}, mode="check")
    report, _ = _execute(_prepare(request), kw)
    _finish(report)


@cli.command(short_help="Rehearse a rollback for real; PASS or FAIL.")
@click.argument("runbook", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--fail-at",
    metavar="STEP_ID",
    help="Force a failure right after this step (default: the last step).",
)
@click.option(
    "--allow-trivial",
    is_flag=True,
    help="Accept a drill that compares no precondition and runs no undo (it proves"
    " nothing): a warning, not a failure.",
)
@_run_options
def drill(runbook: Path, fail_at: str | None, allow_trivial: bool, **kw: Any) -> None:
    """Rehearse a rollback for real: checks, steps, a forced failure, the real
    rollback, the checks again. PASS (exit 0) when the rollback was clean and every
    check answers as before; FAIL (exit 1) otherwise.

    `--report PATH` (no FORMAT:) writes the drill report itself as JSON; the
    run reports (FORMAT:PATH) work as for `run`.

    \b
    Example:
      runbook drill runbooks/release.yaml -e version=1.2.0 --report drill.json
    """
    from ..record.drill import format_drill

    drill_paths = [Path(v) for v in kw["reports"] if v.partition(":")[0] not in FORMATS]
    kw["reports"] = [v for v in kw["reports"] if v.partition(":")[0] in FORMATS]

    if fail_at is None:
        from ..spec.build import load_runbook
        from ..spec.model import Phase

        loaded = load_runbook(runbook)
        fail_at = [*loaded.steps_of(Phase.STEPS), *loaded.steps_of(Phase.VERIFY)][-1].id
    options = {"fail_at": fail_at, "allow_trivial": allow_trivial}
    request = _request(runbook, kw, options=options, mode="drill")
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
    if report.drill.trivial:
        click.echo(
            f"{'warning' if allow_trivial else 'drill FAIL'}: this drill proves"
            " nothing: the runbook has no preconditions to compare before and after,"
            " and no undo ran. Add preconditions that check the state its steps"
            " change, and undos"
            + ("" if allow_trivial else ", or accept it with --allow-trivial"),
            err=True,
        )
    sys.exit(ExitCode.OK if report.drill.passed else ExitCode.FAILED)


@cli.command(short_help="Continue a failed or interrupted run.")
@click.argument("run_id")
@click.option(
    "--force", is_flag=True, help="Resume even though the runbook file changed since."
)
@_session_options
def resume(run_id: str, force: bool, **kw: Any) -> None:
    """Continue a failed or interrupted run from the first unfinished step on each
    host, under a new run id linked to the old one. Secrets are read again."""
    with _open_store(kw["state_dir"], kw["state_url"]) as store:
        request = _saved_request(store, run_id, kw, force=force, mode="resume")
        report, _ = _execute(_prepare(request), kw, store)
    _finish(report)


@cli.command(name="rollback", short_help="Undo what a past run completed.")
@click.argument("run_id")
@click.option(
    "--force",
    is_flag=True,
    help="Roll back even though it was rolled back already, newer runs changed the"
    " same hosts, or the runbook file changed since (audited).",
)
@click.option(
    "--plan",
    "--dry-run",
    "dry_run",
    is_flag=True,
    help="Print the undos it would run, per host, newest first; change nothing.",
)
@_session_options
def rollback_run(run_id: str, force: bool, dry_run: bool, **kw: Any) -> None:
    """Run the undos of what run RUN_ID completed (with the runs it resumed: one
    release), newest first, then the runbook's rollback steps. Refused when it was
    already rolled back or newer runs on the same hosts are still in effect (--force
    overrides, audited). Exit 0 when the rollback completed, 3 when it did not."""
    with _open_store(kw["state_dir"], kw["state_url"]) as store:
        request = _saved_request(store, run_id, kw, force=force, mode="rollback")
        prepared = _prepare(request, read_values=not dry_run)  # a plan reads none
        if dry_run:
            _print_rollback_plan(str(request.resumed_from), prepared)
            return
        report, _ = _execute(prepared, kw, store)
    _finish(report, "rollback")


def _print_rollback_plan(run_id: str, prepared: Prepared) -> None:
    from ..engine.planning import plan_rollback

    rows = plan_rollback(prepared)
    mask = prepared.masker.mask
    click.echo(f"rollback of run {run_id} ({prepared.runbook.name}) would run:")
    if not rows:
        click.echo("  nothing: no completed step of that run has an undo")
    host = None
    for name, step, undo in rows:
        if name != host:
            host = name
            click.echo(f"  {name}:")
        text = mask(undo).replace("\n", "\n" + " " * 8)
        click.echo(f"    {step}: {text}")
    click.echo("nothing was changed (--plan)", err=True)


def _saved_request(
    store: StateStore, run_id: str, kw: dict[str, Any], *, force: bool, mode: str
) -> RunRequest:
    from ..engine.history import saved_request

    return saved_request(
        store,
        store.find_run(run_id).run_id,
        mode=mode,
        force=force,
        yes=kw["yes"],
        approve=frozenset(kw["approve"]),
        command_line=_command_line(),
        audit_forward=kw.get("audit_forward"),
    )
