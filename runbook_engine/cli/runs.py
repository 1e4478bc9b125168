"""Commands that run a runbook: run, check, drill, resume, rollback."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import ExitCode

if TYPE_CHECKING:
    from ..engine.session import RunRequest

from .app import (
    _FORMATS,
    _execute,
    _finish,
    _prepare,
    _request,
    _run_options,
    _session_options,
    _state_dir,
    cli,
    exit_code_for,
)


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
    from ..record.drill import format_drill

    drill_paths = [
        Path(v) for v in kw["reports"] if v.partition(":")[0] not in _FORMATS
    ]
    kw["reports"] = [v for v in kw["reports"] if v.partition(":")[0] in _FORMATS]

    if fail_at is None:
        from ..spec.build import load_runbook
        from ..spec.model import Phase

        loaded = load_runbook(runbook)
        fail_at = [*loaded.steps_of(Phase.STEPS), *loaded.steps_of(Phase.VERIFY)][-1].id
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


@cli.command(short_help="Continue a failed or interrupted run.")
@click.argument("run_id")
@click.option(
    "--force", is_flag=True, help="Resume even though the runbook file changed since."
)
@_session_options
def resume(run_id: str, force: bool, **kw: Any) -> None:
    """Continue a failed or interrupted run from the first unfinished step on each
    host, under a new run id linked to the old one. Secrets are read again."""
    request = _saved_request(run_id, kw, force=force, mode="resume")
    report, _ = _execute(_prepare(request), kw)
    _finish(report)


@cli.command(name="rollback", short_help="Undo what a past run completed.")
@click.argument("run_id")
@click.option(
    "--force",
    is_flag=True,
    help="Roll back even though the runbook file changed since.",
)
@_session_options
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

    from ..engine.executor import RunOptions
    from ..engine.session import RunRequest
    from ..engine.state import load_saved_run
    from ..errors import ResumeError

    state_dir = _state_dir(kw["state_dir"])
    saved = load_saved_run(state_dir, run_id)
    status = saved.status.value if saved.status else "interrupted (never finished)"
    refusals = {
        "succeeded": "it succeeded: there is nothing left to do",
        "rolled_back": "it was rolled back: start a new run",
        "rollback_failed": "its rollback failed: fix what it listed, then run again",
    }
    if mode == "resume" and status in refusals:
        raise ResumeError(f"run {run_id} cannot be resumed: {refusals[status]}")
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
