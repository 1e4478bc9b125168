"""Numbered up/down SQL migrations: discover them, plan a move, apply each step.

Files are `migrations/NNNN_name.up.sql` and `NNNN_name.down.sql`. Every step runs
in its own transaction together with the `schema_migrations` row that records
it. The down SQL is stored with the row, so an older release can still step the
schema back down after a newer release applied migrations it does not ship.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from database import MIGRATIONS_TABLE, has_migrations_table, schema_version, transaction

if TYPE_CHECKING:
    from pathlib import Path

_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$")


class MigrationError(Exception):
    """The requested move is impossible or a migration failed (nothing half-done)."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    up_sql: str
    down_sql: str


@dataclass(frozen=True, slots=True)
class Step:
    direction: str  # "up" or "down"
    version: int
    name: str
    sql: str

    @property
    def label(self) -> str:
        return f"{self.direction} {self.version:04d}_{self.name}"


@dataclass(frozen=True, slots=True)
class MigrateReport:
    from_version: int
    to_version: int
    steps: tuple[Step, ...]


def _read_files(directory: Path) -> dict[int, dict[str, str]]:
    found: dict[int, dict[str, str]] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_RE.match(path.name)
        if match is None:
            raise MigrationError(f"unexpected file name in migrations: {path.name}")
        entry = found.setdefault(int(match[1]), {"name": match[2]})
        entry[match[3]] = path.read_text(encoding="utf-8")
    return found


def discover(directory: Path) -> dict[int, Migration]:
    """All migrations of a release, checked to be numbered 1..N with up and down."""
    migrations: dict[int, Migration] = {}
    for version, entry in sorted(_read_files(directory).items()):
        if version != len(migrations) + 1:
            raise MigrationError(f"migration numbers must be 1..N, found {version:04d}")
        if "up" not in entry or "down" not in entry:
            raise MigrationError(f"migration {version:04d} needs both .up and .down")
        migrations[version] = Migration(
            version, entry["name"], entry["up"], entry["down"]
        )
    return migrations


def split_statements(sql: str) -> list[str]:
    """Split a script into complete statements (what sqlite3 would execute)."""
    statements: list[str] = []
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not _only_comments(buffer):
        raise MigrationError(f"incomplete SQL statement: {buffer.strip()[:60]!r}")
    return statements


def _only_comments(text: str) -> bool:
    return all(
        not line.strip() or line.strip().startswith("--") for line in text.splitlines()
    )


def ensure_migrations_table(conn: sqlite3.Connection) -> None:
    if has_migrations_table(conn):
        return
    with transaction(conn):
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL, down_sql TEXT NOT NULL)"
        )


def _stored_down(conn: sqlite3.Connection, version: int) -> tuple[str, str] | None:
    row = conn.execute(
        f"SELECT name, down_sql FROM {MIGRATIONS_TABLE} WHERE version = ?", (version,)
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def plan(
    conn: sqlite3.Connection, target: int, migrations: dict[int, Migration]
) -> list[Step]:
    """The steps that move the schema from its current version to `target`."""
    current = schema_version(conn)
    if target < 0:
        raise MigrationError(f"target version must be >= 0, got {target}")
    if target > current:
        missing = [v for v in range(current + 1, target + 1) if v not in migrations]
        if missing:
            known = max(migrations, default=0)
            raise MigrationError(
                f"this release knows migrations up to {known}, not {target}"
            )
        return [
            Step("up", v, migrations[v].name, migrations[v].up_sql)
            for v in range(current + 1, target + 1)
        ]
    return [_down_step(conn, v, migrations) for v in range(current, target, -1)]


def _down_step(
    conn: sqlite3.Connection, version: int, migrations: dict[int, Migration]
) -> Step:
    if version in migrations:
        return Step(
            "down", version, migrations[version].name, migrations[version].down_sql
        )
    stored = _stored_down(conn, version)
    if stored is None:
        raise MigrationError(f"no down migration known for version {version}")
    return Step("down", version, stored[0], stored[1])


def apply_step(
    conn: sqlite3.Connection, step: Step, migration: Migration | None
) -> None:
    """Run one step and record it, atomically; re-checks the version under the lock."""
    expected = step.version - 1 if step.direction == "up" else step.version
    with transaction(conn):
        if schema_version(conn) != expected:
            raise MigrationError("schema changed underneath us (concurrent migrate?)")
        for statement in split_statements(step.sql):
            conn.execute(statement)
        if step.direction == "down":
            conn.execute(
                f"DELETE FROM {MIGRATIONS_TABLE} WHERE version = ?", (step.version,)
            )
            return
        assert migration is not None
        conn.execute(
            f"INSERT INTO {MIGRATIONS_TABLE} (version, name, applied_at, down_sql)"
            " VALUES (?, ?, ?, ?)",
            (
                step.version,
                step.name,
                datetime.now(UTC).isoformat(),
                migration.down_sql,
            ),
        )


def migrate(
    conn: sqlite3.Connection, target: int, migrations: dict[int, Migration]
) -> MigrateReport:
    """Move the schema to `target`; each step commits on its own."""
    ensure_migrations_table(conn)
    start = schema_version(conn)
    steps = plan(conn, target, migrations)
    for step in steps:
        try:
            apply_step(conn, step, migrations.get(step.version))
        except sqlite3.Error as exc:
            raise MigrationError(f"{step.label} failed: {exc}") from exc
    return MigrateReport(start, schema_version(conn), tuple(steps))
