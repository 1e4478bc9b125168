"""The controller lock of the database backend: a PostgreSQL session advisory lock
on the run's connection, and a row in ``runbook_lock_holders`` saying who holds it.

The advisory lock is the lock: the server frees it the moment the holder's
connection closes, whether the run ended, was interrupted, or its controller was
killed (kill -9, a lost machine), so there is never a stale lock to break. The row
(lock, run, user, controller host and pid, since, the holder's backend pid) is only
what a refusal says about the holder; a row whose lock is no longer held is ignored
and replaced by the next holder. The run's audit writes share the connection, so a
run that loses its lock cannot record, and so cannot start, another step.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

from ..errors import NoGoError, StateStoreError
from .locks import LockHolder, RunLock, check_lock_name

if TYPE_CHECKING:
    from .pgdb import Database

_SCHEMA = """CREATE TABLE IF NOT EXISTS runbook_lock_holders (
    lock_name text PRIMARY KEY,
    run_id text NOT NULL,
    operator text NOT NULL,
    controller text NOT NULL,
    pid integer NOT NULL,
    since timestamptz NOT NULL,
    backend_pid integer NOT NULL)"""
_HOLDER = """SELECT h.run_id, h.operator, h.controller, h.pid,
        to_char(h.since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        l.pid, h.backend_pid
    FROM pg_locks l
    LEFT JOIN runbook_lock_holders h ON h.lock_name = %s
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.classid::bigint = %s AND l.objid::bigint = %s
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    LIMIT 1"""
_REGISTER = """INSERT INTO runbook_lock_holders
        (lock_name, run_id, operator, controller, pid, since, backend_pid)
    VALUES (%s, %s, %s, %s, %s, %s::timestamptz, pg_backend_pid())
    ON CONFLICT (lock_name) DO UPDATE SET run_id = excluded.run_id,
        operator = excluded.operator, controller = excluded.controller,
        pid = excluded.pid, since = excluded.since,
        backend_pid = excluded.backend_pid"""


def ensure_lock_schema(db: Database) -> None:
    db.execute(_SCHEMA)


def lock_key(name: str) -> int:
    """The advisory lock key of a lock name: 64 bits of its SHA-256, signed."""
    digest = hashlib.sha256(b"runbook lock\0" + name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresLock(RunLock):
    def __init__(self, db: Database, name: str) -> None:
        self.name = check_lock_name(name)
        self.where = "the state database"
        self._db = db
        self._key = lock_key(name)

    def holder(self) -> LockHolder | None:
        for _attempt in range(3):
            with self._guard("read"):
                rows = self._db.query(_HOLDER, (self.name, *_halves(self._key)))
            if not rows:
                return None
            run_id, operator, controller, pid, since, backend, registered = rows[0]
            if run_id is not None and backend == registered:
                return LockHolder(
                    run_id=run_id,
                    operator=operator,
                    host=controller,
                    pid=int(pid),
                    since=since,
                )
            time.sleep(0.05)  # taken a moment ago: its holder row is on its way
        return LockHolder(
            run_id="unknown",
            operator="unknown",
            host=f"database session {backend}",
            pid=0,
            since="unknown",
        )

    def unlock_command(self) -> str:
        return f"runbook unlock {self.name}"

    def refuse_break(self, holder: LockHolder, force: str | None) -> str | None:
        return (
            f"lock {self.name!r} in the state database is held by {holder}. A"
            " database lock is freed the moment its run ends or its controller dies"
            " (its connection closes), so there is no stale lock and nothing to"
            " break: wait for that run, or stop it"
        )

    def _held_message(self, holder: LockHolder) -> str:
        return (
            f"lock {self.name!r} in the state database is held by {holder}; it is"
            " freed when that run ends or its controller stops (no unlock needed)"
        )

    def _create(self, owner: LockHolder) -> LockHolder | None:
        for _attempt in range(3):
            with self._guard("take"), self._db.transaction():
                got = self._db.query("SELECT pg_try_advisory_lock(%s)", (self._key,))
                if got[0][0]:
                    self._db.execute(
                        _REGISTER,
                        (self.name, owner.run_id, owner.operator, owner.host,
                         owner.pid, owner.since),
                    )  # fmt: skip
                    return None
            holder = self.holder()
            if holder is not None:
                return holder
        raise NoGoError(f"lock {self.name!r}: it changed hands three times; try again")

    def _remove(self, run_id: str) -> bool:
        with self._guard("release"), self._db.transaction():
            self._db.execute(
                "DELETE FROM runbook_lock_holders WHERE lock_name = %s"
                " AND run_id = %s AND backend_pid = pg_backend_pid()",
                (self.name, run_id),
            )
            released = self._db.query("SELECT pg_advisory_unlock(%s)", (self._key,))
        return bool(released[0][0])

    def _guard(self, action: str) -> _Guard:
        return _Guard(self.name, action)


class _Guard:
    """Database failures while taking, reading or releasing the lock are a no-go,
    naming the lock (nothing ran under it)."""

    def __init__(self, name: str, action: str) -> None:
        self.name = name
        self.action = action

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, value: BaseException | None, tb: object) -> None:
        if isinstance(value, StateStoreError):
            raise NoGoError(
                f"lock {self.name!r}: cannot {self.action} it: {value}"
            ) from value


def _halves(key: int) -> tuple[int, int]:
    """``pg_locks`` shows a bigint key as two unsigned 32-bit halves."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF
