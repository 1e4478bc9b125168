"""Open the SQLite database named by DATABASE_URL and read its schema version.

Connections run in autocommit mode; `transaction()` makes the boundaries explicit
(BEGIN IMMEDIATE ... COMMIT), which is what migrations and writes rely on.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

MIGRATIONS_TABLE = "schema_migrations"


class DatabaseUnavailableError(Exception):
    """The database file cannot be opened (missing, unreadable, locked, corrupt)."""


def connect(path: Path, *, create: bool = False) -> sqlite3.Connection:
    """Open `path`; without `create` a missing file is an error, never a new db."""
    mode = "rwc" if create else "rw"
    uri = f"file:{quote(str(path))}?mode={mode}"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=5.0, isolation_level=None)
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        raise DatabaseUnavailableError(f"cannot open {path}: {exc}") from exc
    conn.row_factory = sqlite3.Row
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: committed on success, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def has_migrations_table(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
        (MIGRATIONS_TABLE,),
    ).fetchone()
    return row is not None


def schema_version(conn: sqlite3.Connection) -> int:
    """Highest applied migration, 0 for an empty database."""
    if not has_migrations_table(conn):
        return 0
    row = conn.execute(f"SELECT MAX(version) FROM {MIGRATIONS_TABLE}").fetchone()
    return int(row[0] or 0)
