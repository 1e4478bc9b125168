"""Commands about what runs left behind: audit list / show / verify, unlock."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from ..errors import ExitCode, InputError
from .app import (
    ACCEPT_KEYS_OPTION,
    INVENTORY_OPTION,
    STATE_DIR_OPTION,
    _parse_reports,
    _state_dir,
    _write_reports,
    cli,
)

if TYPE_CHECKING:
    from pathlib import Path


@cli.group()
def audit() -> None:
    """Read and verify the audit log."""


@audit.command(name="list")
@STATE_DIR_OPTION
@click.option(
    "-n",
    "--last",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many recent runs.",
)
def audit_list(state_dir: str | None, last: int) -> None:
    """Recent runs: id, runbook, operator, status, start, duration."""
    from ..record.audit import AUDIT_FILE, list_runs
    from ..units import format_duration

    path = _state_dir(state_dir) / AUDIT_FILE
    if not path.exists():
        click.echo(f"no runs recorded yet ({path} does not exist)", err=True)
        return
    runs = list_runs(path)[-last:]
    rows = [("RUN ID", "MODE", "RUNBOOK", "OPERATOR", "STATUS", "STARTED", "DURATION")]
    for item in runs:
        duration = "-" if item.duration is None else format_duration(item.duration)
        status = item.status or "unfinished"
        rows.append(
            (
                item.run_id,
                item.mode,
                item.runbook,
                item.operator,
                status,
                item.started_at,
                duration,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]))


@audit.command(name="show")
@click.argument("run_id")
@STATE_DIR_OPTION
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

    from ..record.audit import AUDIT_FILE, read_records
    from ..record.timeline import format_timeline

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
@STATE_DIR_OPTION
def audit_verify(state_dir: str | None) -> None:
    """Check the whole hash chain (and HMACs when RUNBOOK_AUDIT_KEY is set).

    Exit 0 when intact (a torn last line from a crash is reported, not an error),
    1 with the first bad line otherwise. Prints the head hash to keep elsewhere.
    """
    from ..record.audit import AUDIT_FILE, key_from_env, verify

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


@cli.command(short_help="Break a lock (audited).")
@click.argument("name")
@INVENTORY_OPTION
@click.option(
    "--host", "hosts", multiple=True, help="Break the lock on this inventory host."
)
@click.option(
    "--force", metavar="RUN_ID", help="Break a lock whose holder is alive: its run id."
)
@STATE_DIR_OPTION
@ACCEPT_KEYS_OPTION
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
    from ..engine.unlocking import unlock_locks

    for line in unlock_locks(
        name,
        inventory=inventory,
        hosts=hosts,
        force=force,
        state_dir=_state_dir(state_dir),
        accept_new_host_keys=accept_new_host_keys,
    ):
        click.echo(line, err=True)
