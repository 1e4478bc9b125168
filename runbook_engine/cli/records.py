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
    from collections.abc import Iterator
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
@click.argument("run_id", metavar="RUN_ID|last|PREFIX")
@STATE_DIR_OPTION
@click.option(
    "--json", "as_json", is_flag=True, help="The run's records as JSON lines."
)
@click.option("--host", metavar="PATTERN", help="Only records of these hosts.")
@click.option("--step", metavar="PATTERN", help="Only records of these steps.")
@click.option(
    "--status", metavar="STATUS", help="Only records with this status (e.g. failed)."
)
@click.option(
    "-f", "--follow", is_flag=True, help="Keep showing records until the run ends."
)
@click.option(
    "--report",
    "reports",
    multiple=True,
    metavar="FORMAT:PATH",
    help="Write a report of this past run: json, junit, markdown or html.",
)
def audit_show(
    run_id: str,
    state_dir: str | None,
    as_json: bool,
    host: str | None,
    step: str | None,
    status: str | None,
    follow: bool,
    reports: tuple[str, ...],
) -> None:
    """A past run (its id, `last`, or the start of one id) as a readable timeline.
    --host, --step and --status narrow it (the run's first and last records stay);
    --follow watches a run in progress from another terminal."""
    from ..record.audit import AUDIT_FILE
    from ..record.timeline import format_timeline, matches

    parsed = _parse_reports(reports)
    path = _state_dir(state_dir) / AUDIT_FILE
    wanted = _resolve(path, run_id)
    shown = 0
    records: list[dict[str, Any]] = []
    chain_head: str | None = None
    for record, head in _records_of(path, wanted, follow=follow):
        records.append(record)
        chain_head = head
        if not matches(record, host=host, step=step, status=status):
            continue
        shown += record.get("event") not in ("run.started", "run.finished")
        if as_json:
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            click.echo(format_timeline([record]))
    if not records:
        raise InputError(
            f"no run {run_id!r} in the audit log (see `runbook audit list`)"
        )
    if not shown:
        click.echo("no record of that run matches the filters", err=True)
    _write_reports(parsed, records, wanted, chain_head)


def _resolve(path: Path, run_id: str) -> str:
    from ..record.audit import list_runs, resolve_run_id

    runs = list_runs(path) if path.exists() else []
    try:
        found = resolve_run_id(runs, run_id)
    except ValueError as exc:
        raise InputError(f"{exc}: give more of it") from None
    if found is None:
        raise InputError(
            f"no run {run_id!r} in the audit log {path} (see `runbook audit list`)"
        )
    return found


_FOLLOW_POLL = 0.25  # seconds between two looks at a growing log


def _records_of(
    path: Path, run_id: str, *, follow: bool
) -> Iterator[tuple[dict[str, Any], str]]:
    """A run's complete records with the hash of their line; with ``follow``, also
    the ones appended later, until the run's ``run.finished``."""
    import hashlib
    import time

    from ..record.audit import read_records

    seen = 0
    while True:
        for index, line in enumerate(read_records(path)):
            if index < seen:
                continue
            if not line.terminated:
                break  # being written: read it again next time
            seen = index + 1
            record = line.record
            if record is None or record.get("run_id") != run_id:
                continue
            yield record, hashlib.sha256(line.raw).hexdigest()
            if record.get("event") == "run.finished":
                return
        if not follow:
            return
        time.sleep(_FOLLOW_POLL)


@audit.command(name="verify")
@STATE_DIR_OPTION
@click.option(
    "--expect-head",
    metavar="HASH",
    help="A head hash kept from an earlier verify: fail if that record is gone"
    " (records cut off the end, or the log rewritten).",
)
def audit_verify(state_dir: str | None, expect_head: str | None) -> None:
    """Check the whole hash chain (and HMACs when RUNBOOK_AUDIT_KEY is set).

    Exit 0 when intact (a torn last line from a crash is reported, not an error),
    1 with the first bad line otherwise, or when --expect-head names a record the
    log no longer holds. Prints the head hash to keep elsewhere.
    """
    from ..record.audit import AUDIT_FILE, key_from_env, verify

    path = _state_dir(state_dir) / AUDIT_FILE
    if not path.exists():
        raise InputError(f"no audit log at {path}")
    result = verify(path, key_from_env(), expect_head=expect_head)
    if result.truncated_line is not None:
        click.echo(
            f"{path}:{result.truncated_line}: truncated last line"
            " (a crash mid-write, not an edit);"
            " the next run records it as audit.repaired",
            err=True,
        )
    if not result.ok:
        where = f"{path}:{result.first_bad_line}" if result.first_bad_line else path
        click.echo(f"{where}: chain broken: {result.reason}", err=True)
        sys.exit(ExitCode.FAILED)
    keyed = " and HMAC" if result.keyed else ""
    since = (
        f"; the expected head is record {result.expected_at} of {result.records}"
        if expect_head
        else ""
    )
    click.echo(
        f"ok: {result.records} records, hash chain{keyed} intact{since}", err=True
    )
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
