"""The PostgreSQL backend: one database shared by a team's controllers.

Tables (created on first use, in the connection's ``search_path``):

- ``runbook_audit (n, run_id, event, line, hash, prev_hash, written_at)``: the audit
  chain, one row per record, ``line`` holding the exact JSON line bytes the file
  backend would write (same ``prev_hash``, same ``hmac``), ``n`` its position (1,
  2, 3... with no gap). An append is one call of ``runbook_audit_append``, one
  statement and so one transaction: it takes a transaction-scoped advisory lock on
  the chain head, reads the head (a fresh snapshot, after the lock) and inserts
  the lines only if they were chained on that head; otherwise it returns the head
  and the client chains the records again on it. So the appends of every
  controller form one line; ``prev_hash`` is unique, so the database itself
  refuses a fork. A trigger refuses UPDATE, DELETE and TRUNCATE.
- ``runbook_run_state (run_id, n, line)``: what ``resume`` and ``rollback`` read
  (``state.state_line``), committed with the audit records of the same barrier.
- ``runbook_resume_claims (run_id, resumed_by, claimed_at)``: a run is resumed once.
- ``runbook_grants (run_id, step, approved, operator, confirm, granted_at)``: the
  answers of ``runbook approve``, one per gate.
- ``runbook_lock_holders`` (``pglock``): who holds which controller lock.
- ``runbook_schema (version)``.

A record is durable when its commit returns: one commit per barrier, where the file
backend fsyncs once. Losing the connection mid-run makes the next append raise
``AuditError``, so no further step starts (exit 3); what was committed stays.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from ..errors import AuditError, ResumeError, StateStoreError
from ..record.audit import key_from_env, summarize_runs
from ..record.chain import ZERO_HASH, AuditLine, chain_lines, parse_record, sha256_hex
from .pgdb import Database
from .pglock import PostgresLock, ensure_lock_schema
from .state import saved_run_from_lines, state_line
from .store import Grant, StateStore

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from pathlib import Path

    from ..record.audit import RunSummary
    from ..record.events import Event
    from .state import SavedRun

SCHEMA_VERSION = 1
CHAIN_LOCK = (0x52424B31, 0)  # "RBK1": the advisory lock on the chain head
SCHEMA_LOCK = (0x52424B31, 1)  # held while one controller creates the tables
_PAGE = 2000  # rows read per query when walking the chain
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS runbook_audit (
        n bigint PRIMARY KEY CHECK (n > 0),
        run_id text NOT NULL,
        event text NOT NULL,
        line bytea NOT NULL,
        hash text NOT NULL,
        prev_hash text NOT NULL UNIQUE,
        written_at timestamptz NOT NULL DEFAULT now())""",
    "CREATE INDEX IF NOT EXISTS runbook_audit_run ON runbook_audit (run_id, n)",
    """CREATE INDEX IF NOT EXISTS runbook_audit_runs ON runbook_audit (n)
        WHERE event IN ('run.started', 'run.finished')""",
    """CREATE OR REPLACE FUNCTION runbook_audit_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$ BEGIN
        RAISE EXCEPTION 'runbook_audit is append-only: % refused', TG_OP;
        END $$""",
    "DROP TRIGGER IF EXISTS runbook_audit_append_only ON runbook_audit",
    """CREATE TRIGGER runbook_audit_append_only BEFORE UPDATE OR DELETE
        ON runbook_audit FOR EACH ROW EXECUTE FUNCTION runbook_audit_append_only()""",
    "DROP TRIGGER IF EXISTS runbook_audit_no_truncate ON runbook_audit",
    """CREATE TRIGGER runbook_audit_no_truncate BEFORE TRUNCATE ON runbook_audit
        FOR EACH STATEMENT EXECUTE FUNCTION runbook_audit_append_only()""",
    """CREATE TABLE IF NOT EXISTS runbook_run_state (
        run_id text NOT NULL, n integer NOT NULL, line text NOT NULL,
        PRIMARY KEY (run_id, n))""",
    """CREATE TABLE IF NOT EXISTS runbook_resume_claims (
        run_id text PRIMARY KEY, resumed_by text NOT NULL,
        claimed_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS runbook_grants (
        run_id text NOT NULL, step text NOT NULL, approved boolean NOT NULL,
        operator text NOT NULL, confirm text,
        granted_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (run_id, step))""",
    "CREATE TABLE IF NOT EXISTS runbook_schema (version integer NOT NULL)",
    # each statement of a volatile plpgsql function takes a new snapshot (READ
    # COMMITTED): the head read after the lock sees every append committed before
    """CREATE OR REPLACE FUNCTION runbook_audit_append(
        expected_n bigint, expected_hash text, run_ids text[], events text[],
        lines bytea[], hashes text[], prevs text[],
        state_runs text[], state_ns integer[], state_lines text[])
    RETURNS TABLE (appended boolean, head_n bigint, head_hash text)
    LANGUAGE plpgsql VOLATILE AS $$
    DECLARE current_n bigint; current_hash text;
    BEGIN
        PERFORM pg_advisory_xact_lock(1380076337, 0);
        SELECT a.n, a.hash INTO current_n, current_hash
            FROM runbook_audit a ORDER BY a.n DESC LIMIT 1;
        IF current_n IS NULL THEN
            current_n := 0; current_hash := repeat('0', 64);
        END IF;
        IF current_n <> expected_n OR current_hash <> expected_hash THEN
            RETURN QUERY SELECT false, current_n, current_hash;
            RETURN;
        END IF;
        INSERT INTO runbook_audit (n, run_id, event, line, hash, prev_hash)
            SELECT current_n + i, run_ids[i], events[i], lines[i], hashes[i], prevs[i]
            FROM generate_subscripts(lines, 1) AS i;
        INSERT INTO runbook_run_state (run_id, n, line)
            SELECT state_runs[i], state_ns[i], state_lines[i]
            FROM generate_subscripts(state_lines, 1) AS i;
        RETURN QUERY SELECT true, current_n + cardinality(lines),
            hashes[cardinality(lines)];
    END $$""",
)
_APPEND = (
    "SELECT * FROM runbook_audit_append(%s::bigint, %s::text, %s::text[],"
    " %s::text[], %s::bytea[], %s::text[], %s::text[], %s::text[], %s::integer[],"
    " %s::text[])"
)
_RECHAIN_LIMIT = 1000  # appends by others between two of our tries: give up
_INSERT_STATE = "INSERT INTO runbook_run_state (run_id, n, line) VALUES (%s, %s, %s)"
_GRANT_COLUMNS = "run_id, step, approved, operator, to_json(granted_at)#>>'{}', confirm"


class PostgresStore(StateStore):
    locks_release_themselves = True

    def __init__(self, db: Database, *, state_dir: Path) -> None:
        self.db = db
        self.state_dir = state_dir
        self.location = db.location
        self._state: list[tuple[str, int, str]] = []  # run state rows not yet written
        self._state_counts: dict[str, int] = {}
        self._head: tuple[int, str] | None = None  # the chain head last seen

    @classmethod
    def connect(cls, url: str, *, state_dir: Path) -> PostgresStore:
        """Connect and make sure the tables exist; ``StateStoreError`` (exit 2)
        naming the cause when the database cannot be used."""
        db = Database.connect(url)
        try:
            _ensure_schema(db)
        except BaseException:
            db.close()
            raise
        return cls(db, state_dir=state_dir)

    def close(self) -> None:
        self.db.close()  # its session locks go with it

    # -- writing a run ---------------------------------------------------------------

    def open_audit(self, run_id: str) -> PostgresAuditWriter:
        return PostgresAuditWriter(self, run_id, key_from_env())

    def state_sink(self, run_id: str) -> PostgresStateSink:
        return PostgresStateSink(self, run_id)

    def controller_lock(self, name: str) -> PostgresLock:
        return PostgresLock(self.db, name)

    def claim_resume(self, run_id: str, by: str) -> None:
        claimed = self.db.query(
            "INSERT INTO runbook_resume_claims (run_id, resumed_by) VALUES (%s, %s)"
            " ON CONFLICT (run_id) DO NOTHING RETURNING resumed_by",
            (run_id, by),
        )
        if claimed:
            return
        first = self.db.query(
            "SELECT resumed_by FROM runbook_resume_claims WHERE run_id = %s", (run_id,)
        )
        raise ResumeError(
            f"run {run_id} was already resumed as run {first[0][0]}: resume that one"
        )

    def append(
        self, records: Sequence[Mapping[str, Any]], key: bytes | None
    ) -> tuple[list[bytes], str]:
        """Chain ``records`` after the head and commit them with the run state rows
        waiting since the last barrier: the lines written and the new head. One
        round trip when the head is the one this process saw last."""
        with self.db.mutex:
            head = self._head or self._read_head()
            for _attempt in range(_RECHAIN_LIMIT):
                lines, new_head = chain_lines(records, head[1], key)
                hashes = [sha256_hex(line) for line in lines]
                state = self._state
                answer = self.db.query(
                    _APPEND,
                    (head[0], head[1],
                     [str(r.get("run_id", "")) for r in records],
                     [str(r.get("event", "")) for r in records],
                     lines, hashes, [head[1], *hashes[:-1]],
                     [row[0] for row in state], [row[1] for row in state],
                     [row[2] for row in state]),
                )  # fmt: skip
                appended, n, head_hash = answer[0]
                self._head = (int(n), str(head_hash))
                if appended:
                    self._state = self._state[len(state) :]
                    return lines, new_head
                head = self._head  # others appended since: chain on their head
        raise StateStoreError(
            f"state database {self.location}: the chain head kept moving"
        )

    def head(self) -> tuple[int, str]:
        """The chain's head now: its position and hash."""
        with self.db.mutex:
            self._head = self._read_head()
            return self._head

    def _read_head(self) -> tuple[int, str]:
        rows = self.db.query(
            "SELECT n, hash FROM runbook_audit ORDER BY n DESC LIMIT 1"
        )
        return (int(rows[0][0]), str(rows[0][1])) if rows else (0, ZERO_HASH)

    def queue_state(self, run_id: str, line: str) -> None:
        with self.db.mutex:
            count = self._state_counts.get(run_id, 0) + 1
            self._state_counts[run_id] = count
            self._state.append((run_id, count, line))

    def flush_state(self) -> None:
        with self.db.mutex:
            if self._state:
                with self.db.transaction():
                    self._write_state()

    def _write_state(self) -> None:
        rows, self._state = self._state, []
        try:
            self.db.execute_many(_INSERT_STATE, rows)
        except BaseException:
            self._state = rows + self._state  # not written: try again next time
            raise

    # -- reading ---------------------------------------------------------------------

    def read_lines(self, after: int = 0) -> Iterator[AuditLine]:
        """Page by page (nothing is held open between pages)."""
        while True:
            rows = self.db.query(
                "SELECT n, line FROM runbook_audit WHERE n > %s ORDER BY n LIMIT %s",
                (after, _PAGE),
            )
            for n, line in rows:
                raw = bytes(line)
                yield AuditLine(int(n), raw, parse_record(raw), True)
            if len(rows) < _PAGE:
                return
            after = int(rows[-1][0])

    def audit_missing(self) -> str | None:
        rows = self.db.query("SELECT EXISTS (SELECT 1 FROM runbook_audit)")
        return None if rows[0][0] else f"{self.location} holds no audit record yet"

    def where(self, line: int) -> str:
        return f"{self.location} record {line}"

    def list_runs(self) -> list[RunSummary]:
        rows = self.db.query(
            "SELECT n, line FROM runbook_audit"
            " WHERE event IN ('run.started', 'run.finished') ORDER BY n"
        )
        return summarize_runs(_lines(rows))

    def run_records(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT n, line FROM runbook_audit WHERE run_id = %s ORDER BY n", (run_id,)
        )
        return [line.record for line in _lines(rows) if line.record is not None]

    def load_saved_run(self, run_id: str) -> SavedRun:
        rows = self.db.query(
            "SELECT line FROM runbook_run_state WHERE run_id = %s ORDER BY n",
            (run_id,),
        )
        if not rows:
            raise ResumeError(f"no saved state for run {run_id!r} in {self.location}")
        return saved_run_from_lines(run_id, (str(row[0]) for row in rows))

    # -- approvals -------------------------------------------------------------------

    def put_grant(self, grant: Grant) -> Grant | None:
        stored = self.db.query(
            "INSERT INTO runbook_grants (run_id, step, approved, operator, confirm)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (run_id, step) DO NOTHING"
            " RETURNING 1",
            (grant.run_id, grant.step, grant.approved, grant.operator, grant.confirm),
        )
        return None if stored else self.find_grant(grant.run_id, grant.step)

    def find_grant(self, run_id: str, step: str) -> Grant | None:
        rows = self.db.query(
            f"SELECT {_GRANT_COLUMNS} FROM runbook_grants"
            " WHERE run_id = %s AND step = %s",
            (run_id, step),
        )
        if not rows:
            return None
        run, step_id, approved, operator, granted_at, confirm = rows[0]
        return Grant(
            run_id=run,
            step=step_id,
            approved=bool(approved),
            operator=operator,
            granted_at=str(granted_at),
            confirm=confirm,
        )


class PostgresAuditWriter:
    """``AuditWriter`` on the database. A failure of the first append (nothing has
    run yet) is ``StateStoreError``; any later one is ``AuditError``."""

    def __init__(self, store: PostgresStore, run_id: str, key: bytes | None) -> None:
        self.store = store
        self.run_id = run_id
        self._key = key
        self._appended = False
        self._head = store.head()[1]

    @property
    def head_hash(self) -> str:
        return self._head

    def append(self, records: Sequence[Mapping[str, Any]]) -> list[bytes]:
        if not records:
            return []
        try:
            lines, self._head = self.store.append(records, self._key)
        except StateStoreError as exc:
            if not self._appended:
                raise
            raise AuditError(
                f"audit trail {exc}: cannot write; no further step starts"
            ) from exc
        self._appended = True
        return lines

    def close(self) -> None:
        """The connection is the store's: its opener closes it."""


class PostgresStateSink:
    """``RunStateSink`` on the database: rows wait for the next audit commit."""

    def __init__(self, store: PostgresStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.failure: str | None = None

    def emit(self, event: Event) -> None:
        line = state_line(event)
        if line is not None:
            self.store.queue_state(self.run_id, line)

    def barrier(self) -> None:
        if self.failure is not None:
            return
        try:
            self.store.flush_state()
        except StateStoreError as exc:
            self.failure = f"run state not saved (resume unavailable): {exc}"

    def close(self) -> None:
        self.barrier()


def _lines(rows: list[tuple[Any, ...]]) -> Iterator[AuditLine]:
    for n, line in rows:
        raw = bytes(line)
        yield AuditLine(int(n), raw, parse_record(raw), True)


def _ensure_schema(db: Database) -> None:
    """Create the tables once per database, serialized: controllers race here.

    The schema lock is a *session* lock taken in its own statement, so the check
    after it runs in a new transaction that sees what the winner committed (a
    check inside the locked transaction can miss it: the backend's catalog cache
    still says "no such table", and re-running the DDL against tables already in
    use deadlocks with the controllers writing to them)."""
    if _schema_version(db) >= SCHEMA_VERSION:
        return
    db.execute("SELECT pg_advisory_lock(%s, %s)", SCHEMA_LOCK)
    try:
        if _schema_version(db) >= SCHEMA_VERSION:
            return
        with db.transaction():
            for statement in _SCHEMA:
                db.execute(statement)
            ensure_lock_schema(db)
            db.execute("DELETE FROM runbook_schema")
            db.execute("INSERT INTO runbook_schema VALUES (%s)", (SCHEMA_VERSION,))
    finally:
        with contextlib.suppress(StateStoreError):  # a lost connection frees it
            db.execute("SELECT pg_advisory_unlock(%s, %s)", SCHEMA_LOCK)


def _schema_version(db: Database) -> int:
    # pg_tables is read with the statement's snapshot, not the catalog cache
    rows = db.query(
        "SELECT count(*) FROM pg_catalog.pg_tables"
        " WHERE schemaname = current_schema() AND tablename = 'runbook_schema'"
    )
    if not rows[0][0]:
        return 0
    version = db.query("SELECT max(version) FROM runbook_schema")
    return int(version[0][0] or 0)
