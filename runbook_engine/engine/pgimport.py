"""``runbook state import FILE``: move an existing ``audit.jsonl`` (and the
``runs/`` states and resume claims beside it) into the database, chain intact.

The file is verified first (with ``RUNBOOK_AUDIT_KEY`` when set); its records are
copied byte for byte, in order, under the chain lock, in one transaction. Into an
empty chain everything goes; into a non-empty one only a file that continues it:
either its first record links to the database's head, or the file holds the
database's head (it was exported from there, or imported before) and the records
after it are added. Anything else is refused and nothing is imported. Torn lines
(a crash mid-write) are not records: the chain runs across them and they stay out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import InputError
from ..record.audit import key_from_env, read_records
from ..record.chain import ZERO_HASH, AuditLine, sha256_hex, verify_lines
from .pgstore import CHAIN_LOCK, PostgresStore
from .state import is_run_id

if TYPE_CHECKING:
    from pathlib import Path

    from .store import StateStore

_BATCH = 1000


def import_state(store: StateStore, path: Path) -> list[str]:
    """Import ``path`` into ``store`` (a database); what was done, as lines."""
    if not isinstance(store, PostgresStore):
        raise InputError(
            "state import loads a file into a database: give --state"
            " postgresql://... (or RUNBOOK_STATE_URL)"
        )
    lines = list(read_records(path))
    key = key_from_env()
    if key is None and any(line.record and "hmac" in line.record for line in lines):
        raise InputError(  # what goes into the table stays: check it all first
            f"{path}: its records carry an hmac, which only RUNBOOK_AUDIT_KEY can"
            " check: set it, then import; nothing imported"
        )
    report = verify_lines(lines, key)
    if not report.ok:
        raise InputError(
            f"{path}:{report.first_bad_line}: chain broken: {report.reason};"
            " nothing imported"
        )
    records = [line for line in lines if line.record is not None and line.terminated]
    said = [_import_chain(store, path, records)]
    said += _import_runs(store, path.parent / "runs")
    if report.truncated_line is not None:
        said.append(f"left out the torn last line {report.truncated_line} (a crash)")
    return said


def _import_chain(store: PostgresStore, path: Path, records: list[AuditLine]) -> str:
    db = store.db
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s, %s)", CHAIN_LOCK)
        head = db.query("SELECT n, hash FROM runbook_audit ORDER BY n DESC LIMIT 1")
        n, head_hash = head[0] if head else (0, ZERO_HASH)
        start = _continuation(records, int(n), str(head_hash), path)
        rows = []
        for offset, line in enumerate(records[start:], start=1):
            assert line.record is not None
            rows.append(
                (n + offset, str(line.record.get("run_id", "")),
                 str(line.record.get("event", "")), line.raw, sha256_hex(line.raw),
                 str(line.record.get("prev_hash")))
            )  # fmt: skip
        for first in range(0, len(rows), _BATCH):
            db.execute_many(
                "INSERT INTO runbook_audit (n, run_id, event, line, hash, prev_hash)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                rows[first : first + _BATCH],
            )
    if not rows:
        return f"nothing to import: the database already holds every record of {path}"
    return (
        f"imported {len(rows)} records of {path} (records {n + 1} to {n + len(rows)}"
        f" of the database's chain), head {rows[-1][4]}"
    )


def _continuation(records: list[AuditLine], n: int, head: str, path: Path) -> int:
    """Where in ``records`` the import starts, or ``InputError``."""
    if n == 0:
        return 0
    hashes = [sha256_hex(line.raw) for line in records]
    if head in hashes:
        return hashes.index(head) + 1
    if records and records[0].record and records[0].record.get("prev_hash") == head:
        return 0
    raise InputError(
        f"the database already holds a chain of {n} records (head {head}) that"
        f" {path} does not continue; nothing imported"
    )


def _import_runs(store: PostgresStore, runs: Path) -> list[str]:
    """The saved states and resume claims beside the audit log, runs the database
    does not know yet."""
    if not runs.is_dir():
        return []
    db, states, claims = store.db, 0, 0
    with db.transaction():
        for path in sorted(runs.glob("*.jsonl")):
            run_id = path.stem
            known = db.query(
                "SELECT 1 FROM runbook_run_state WHERE run_id = %s LIMIT 1", (run_id,)
            )
            if not is_run_id(run_id) or known:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            rows = [(run_id, i, line) for i, line in enumerate(text.splitlines(), 1)]
            db.execute_many(
                "INSERT INTO runbook_run_state (run_id, n, line) VALUES (%s, %s, %s)",
                rows,
            )
            states += 1
        for path in sorted(runs.glob("*.resumed-by")):
            by = path.read_text(encoding="utf-8", errors="replace").strip()
            done = db.query(
                "INSERT INTO runbook_resume_claims (run_id, resumed_by) VALUES (%s, %s)"
                " ON CONFLICT (run_id) DO NOTHING RETURNING 1",
                (path.name.removesuffix(".resumed-by"), by),
            )
            claims += bool(done)
    return [f"imported the saved state of {states} run(s) and {claims} resume claim(s)"]
