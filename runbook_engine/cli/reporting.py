"""``--report FORMAT:PATH``: which paths a report may be written to (checked before
anything runs, exit 2) and writing them after the run (a failure is exit 3, naming
the path; the audit log still has the run)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from ..errors import InputError, ReportError

FORMATS = ("json", "junit", "markdown", "html")


def parse_reports(
    values: tuple[str, ...] | list[str], protected: tuple[Path, ...] = ()
) -> list[tuple[str, Path]]:
    """``FORMAT:PATH`` values, each a file a report can be written to and none
    inside ``protected`` (the state dir, then the runbook): else exit 2, nothing
    ran."""
    parsed: list[tuple[str, Path]] = []
    targets: set[Path] = set()
    for value in values:
        kind, sep, path = value.partition(":")
        if not sep or kind not in FORMATS or not path:
            raise InputError(
                f"--report {value!r}: expected FORMAT:PATH with FORMAT one of"
                f" {', '.join(FORMATS)}"
            )
        try:
            target = _writable_report_path(value, Path(path), protected)
        except OSError as exc:  # a name too long, a loop of symlinks...
            raise InputError(f"--report {value!r}: {exc.strerror or exc}") from None
        if target in targets:
            raise InputError(f"--report {value!r}: another --report names {path}")
        targets.add(target)
        parsed.append((kind, Path(path)))
    return parsed


def _writable_report_path(value: str, path: Path, protected: tuple[Path, ...]) -> Path:
    """``path`` resolved, when a report can be written there (its directory is
    made if missing); else exit 2 before anything runs."""
    if path.is_dir():
        raise InputError(f"--report {value!r}: {path} is a directory; give a file name")
    if path.exists() and not path.is_file():  # a FIFO would block for ever
        raise InputError(f"--report {value!r}: {path} is not a regular file")
    target = path.resolve()
    for index, kept in enumerate(p.resolve() for p in protected):
        if target == kept or (index == 0 and kept in target.parents):
            what = "in the state dir" if index == 0 else "the runbook"
            raise InputError(
                f"--report {value!r}: {path} is {what} (a report would overwrite"
                " it); write it elsewhere"
            )
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"--report {value!r}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"--report {value!r}: cannot write in {parent}")
    return target


def write_reports(
    reports: list[tuple[str, Path]],
    records: list[dict[str, Any]],
    run_id: str,
    chain_head: str | None,
) -> list[str]:
    """Write each report; returns what could not be written, and why."""
    from ..record import reports as report_formats

    failed = []
    for kind, path in reports:
        try:
            report_formats.write(
                kind, path, records, chain_head=chain_head, run_id=run_id
            )
        except OSError as exc:
            failed.append(f"{kind} report {path}: {exc.strerror or exc}")
            continue
        click.echo(f"report: {kind} written to {path}", err=True)
    return failed


def report_failure(run_id: str, failed: list[str]) -> ReportError:
    return ReportError(
        f"run {run_id}: cannot write {'; '.join(failed)} (the audit log has the"
        f" run: `runbook audit show {run_id} --report FORMAT:PATH` writes it again)"
    )
