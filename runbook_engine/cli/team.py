"""Commands for a team sharing one store: ``approve`` (answer a gate that waits in
another run, from any machine) and ``state import`` (move an existing audit log
into the database)."""

from __future__ import annotations

from pathlib import Path

import click

from .app import _open_store, _state_options, cli


@cli.command(short_help="Answer an approval gate waiting in a run (audited there).")
@click.argument("run_id", metavar="RUN_ID|last|PREFIX")
@click.argument("step", metavar="STEP_ID")
@click.option("--deny", is_flag=True, help="Refuse instead of approving.")
@click.option(
    "--confirm",
    metavar="WORD",
    help="The word the gate asks to type (its confirm:), when it asks for one.",
)
@_state_options
def approve(
    run_id: str,
    step: str,
    deny: bool,
    confirm: str | None,
    state_dir: str | None,
    state_url: str | None,
) -> None:
    """Approve (or --deny) the gate STEP_ID that waits in run RUN_ID, from this or
    any other machine using the same store. The waiting run records the answer in
    its audit trail, with you ($RUNBOOK_OPERATOR or user@host) as the operator and
    via remote. Exit 2 when no such gate waits now.

    \b
    Example:
      runbook approve 20261203-101500-a1b2c3 confirm --confirm production
    """
    from ..engine.granting import grant_approval, recorded_answer

    with _open_store(state_dir, state_url) as store:
        grant = grant_approval(store, run_id, step, approved=not deny, confirm=confirm)
        verdict = "approved" if grant.approved else "denied"
        click.echo(
            f"{verdict} step {step!r} of run {grant.run_id} as {grant.operator}",
            err=True,
        )
        answer = recorded_answer(store, grant.run_id, step)
    if answer is None:
        click.echo(
            f"run {grant.run_id} has not recorded it yet: it looks while it waits;"
            f" see `runbook audit show {grant.run_id}`",
            err=True,
        )
        return
    taken = "approved" if answer.get("approved") else "refused"
    click.echo(f"run {grant.run_id} recorded it: {taken} on {answer.get('host')}")


@cli.group(name="state")
def state_group() -> None:
    """The shared state store (PostgreSQL, with --state or RUNBOOK_STATE_URL)."""


@state_group.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_state_options
def state_import(file: Path, state_dir: str | None, state_url: str | None) -> None:
    """Load an existing audit.jsonl (and the runs/ states beside it) into the
    database, with its hash chain intact. Refused, importing nothing, when the file's
    chain is broken or the database already holds a chain the file does not
    continue; importing the same file again adds only what is new.

    \b
    Example:
      runbook state import ~/.local/state/runbook/audit.jsonl --state postgresql://db/runbook
    """
    from ..engine.pgimport import import_state

    if not state_url:
        from ..errors import InputError

        raise InputError(
            "state import loads a file into a database: give --state"
            " postgresql://... (or RUNBOOK_STATE_URL)"
        )
    with _open_store(state_dir, state_url) as store:
        said = import_state(store, file)
    for line in said:
        click.echo(line, err=True)
