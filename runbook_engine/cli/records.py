"""Commands about what runs left behind: audit list / show / verify / export,
unlock. Each reads the store ``--state`` or ``--state-dir`` names."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from pathlib import Path as Pathlib
from typing import TYPE_CHECKING, Any, BinaryIO

import click

from ..errors import ExitCode, InputError
from .app import (
    ACCEPT_KEYS_OPTION,
    INVENTORY_OPTION,
    _open_store,
    _state_dir,
    _state_options,
    cli,
)
from .reporting import parse_reports, report_failure, write_reports

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from ..engine.store import StateStore
    from ..record.chain import VerifyReport


@cli.group()
def audit() -> None:
    """Read and verify the audit log."""


@audit.command(name="list")
@_state_options
@click.option(
    "-n",
    "--last",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many recent runs.",
)
def audit_list(state_dir: str | None, state_url: str | None, last: int) -> None:
    """Recent runs: id, runbook, operator, status, start, duration."""
    from ..units import format_duration

    with _open_store(state_dir, state_url) as store:
        missing = store.audit_missing()
        if missing:
            click.echo(f"no runs recorded yet ({missing})", err=True)
            return
        every = store.list_runs()
    runs = every[-last:]
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
    if len(every) > len(runs):
        click.echo(
            f"the last {len(runs)} of {len(every)} runs (-n N shows more)", err=True
        )


@audit.command(name="show")
@click.argument("run_id", metavar="RUN_ID|last|PREFIX")
@_state_options
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
    state_url: str | None,
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
    parsed = parse_reports(reports, (_state_dir(state_dir),))
    with _open_store(state_dir, state_url) as store:
        wanted = store.find_run(run_id).run_id
        records, chain_head = _show(
            store,
            wanted,
            as_json,
            follow,
            host=host,
            step=step,
            status=_status_filter(status),
        )
    if not records:
        raise InputError(
            f"no run {run_id!r} in the audit log (see `runbook audit list`)"
        )
    failed = write_reports(parsed, records, wanted, chain_head)
    if failed:
        raise report_failure(wanted, failed)


def _show(
    store: StateStore,
    wanted: str,
    as_json: bool,
    follow: bool,
    **filters: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Print run ``wanted``'s records that match ``filters``; all its records and
    the hash of the last one."""
    from ..record.timeline import format_timeline, matches

    shown = 0
    records: list[dict[str, Any]] = []
    chain_head: str | None = None
    for record, head in _records_of(store, wanted, follow=follow):
        records.append(record)
        chain_head = head
        if not matches(record, **filters):
            continue
        shown += record.get("event") not in ("run.started", "run.finished")
        if as_json:
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            click.echo(format_timeline([record]))
    if records and not shown:
        click.echo("no record of that run matches the filters", err=True)
    return records, chain_head


_FOLLOW_POLL = 0.25  # seconds between two looks at a growing log


def _head_hash(value: str | None) -> str | None:
    """--expect-head: the 64 hex digits `audit verify` printed, or 12 or more of
    their first ones."""
    if value is None:
        return None
    wanted = value.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{12,64}", wanted):
        raise InputError(
            f"--expect-head {value!r}: give the head hash `runbook audit verify`"
            " printed (64 hex digits, or at least its first 12)"
        )
    return wanted


_STATUSES = frozenset(
    {"ok", "changed", "skipped", "failed", "unknown", "unfinished"}
    | {"succeeded", "rolled_back", "rollback_failed", "no_go", "interrupted"}
)


def _status_filter(value: str | None) -> str | None:
    """--status: a step or run status (or an fnmatch pattern of them)."""
    if value is None or set("*?[") & set(value) or value in _STATUSES:
        return value
    raise InputError(
        f"--status {value!r}: not a status; use one of {', '.join(sorted(_STATUSES))}"
    )


def _records_of(
    store: StateStore, run_id: str, *, follow: bool
) -> Iterator[tuple[dict[str, Any], str]]:
    """A run's complete records with the hash of their line; with ``follow``, also
    the ones appended later, until the run's ``run.finished``."""
    import hashlib
    import time

    seen = 0
    while True:
        for line in store.read_lines(after=seen):
            if not line.terminated:
                break  # being written: read it again next time
            seen = line.number
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
@_state_options
@click.option(
    "--expect-head",
    metavar="HASH",
    help="A head hash kept from an earlier verify: fail if that record is gone"
    " (records cut off the end, or the log rewritten).",
)
def audit_verify(
    state_dir: str | None, state_url: str | None, expect_head: str | None
) -> None:
    """Check the whole hash chain (and HMACs when RUNBOOK_AUDIT_KEY is set).

    Exit 0 when intact (a torn last line from a crash is reported, not an error),
    1 with the first bad line otherwise, or when --expect-head names a record the
    log no longer holds. Prints the head hash to keep elsewhere.
    """
    from ..record.audit import key_from_env

    with _open_store(state_dir, state_url) as store:
        if store.audit_missing():
            raise InputError(f"no audit log at {store.location}")
        result = store.verify(key_from_env(), expect_head=_head_hash(expect_head))
    _print_verdict(store, result, expect_head)
    click.echo(f"head {result.head_hash}")


def _print_verdict(
    store: StateStore, result: VerifyReport, expect_head: str | None
) -> None:
    """What ``verify`` (and ``export``) say about a chain; exit 1 when broken."""
    if result.truncated_line is not None:
        click.echo(
            f"{store.where(result.truncated_line)}: truncated last line"
            " (a crash mid-write, not an edit);"
            " the next run records it as audit.repaired",
            err=True,
        )
    if not result.ok:
        line = result.first_bad_line
        where = store.where(line) if line else store.location
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
    if result.unchecked_hmacs:
        click.echo(
            f"note: {result.unchecked_hmacs} records carry an HMAC that was not"
            " checked: set RUNBOOK_AUDIT_KEY to check them",
            err=True,
        )


@audit.command(name="export")
@click.argument(
    "file", required=False, type=click.Path(dir_okay=False, path_type=Pathlib)
)
@click.option("--force", is_flag=True, help="Replace FILE when it exists.")
@_state_options
def audit_export(
    file: Path | None, force: bool, state_dir: str | None, state_url: str | None
) -> None:
    """Write the whole audit chain, line for line, as JSONL to FILE (default, or
    -: stdout): the format of audit.jsonl, so `runbook audit verify --state-dir` on
    the directory of a FILE named audit.jsonl checks it the same way. An existing
    FILE is replaced only with --force. Says whether the chain verifies (exit 1 when
    it does not; the file is written all the same)."""
    from ..record.audit import key_from_env
    from ..record.chain import ChainChecker

    if file is not None and str(file) == "-":
        file = None
    if file is not None and (file.exists() or file.is_symlink()) and not force:
        raise InputError(
            f"audit export {file}: the file exists (another audit log?); give a new"
            " name, or --force to replace it"
        )
    checker = ChainChecker(key_from_env())
    with _open_store(state_dir, state_url) as store:
        if store.audit_missing():
            raise InputError(f"no audit log at {store.location}")
        with _export_target(file) as out:
            for line in store.read_lines():
                checker.feed(line)
                out.write(line.raw + (b"\n" if line.terminated else b""))
        result = checker.report()
    if file is not None:
        click.echo(f"exported {result.records} records to {file}", err=True)
    _print_verdict(store, result, None)
    click.echo(f"head {result.head_hash}", err=True)


@contextlib.contextmanager
def _export_target(file: Path | None) -> Iterator[BinaryIO]:
    """stdout, or FILE written beside itself (0600) and renamed into place."""
    if file is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    temp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)  # as --report does
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise InputError(f"audit export {file}: {exc.strerror or exc}") from None
    try:
        with open(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        temp.replace(file)
    finally:
        temp.unlink(missing_ok=True)


@cli.command(short_help="Break a lock (audited).")
@click.argument("name")
@INVENTORY_OPTION
@click.option(
    "--host", "hosts", multiple=True, help="Break the lock on this inventory host."
)
@click.option(
    "--force", metavar="RUN_ID", help="Break a lock whose holder is alive: its run id."
)
@_state_options
@ACCEPT_KEYS_OPTION
def unlock(
    name: str,
    inventory: Path | None,
    hosts: tuple[str, ...],
    force: str | None,
    state_dir: str | None,
    state_url: str | None,
    accept_new_host_keys: bool,
) -> None:
    """Break lock NAME (audited). A stale lock breaks as is; a live holder needs
    --force RUN_ID (the holder's run id). With --state (a database), the controller's
    lock frees itself when its holder ends or dies: unlock names the holder."""
    from ..engine.unlocking import unlock_locks

    with _open_store(state_dir, state_url) as store:
        lines = unlock_locks(
            name,
            inventory=inventory,
            hosts=hosts,
            force=force,
            store=store,
            accept_new_host_keys=accept_new_host_keys,
        )
    for line in lines:
        click.echo(line, err=True)
