"""The audit log: ``<state_dir>/audit.jsonl``, append-only, hash-chained, fsynced.

Owns the file: one chained line per record (the chain itself, ``prev_hash`` and
``hmac``, is ``chain.py``'s), appended under an exclusive ``flock`` so that several
processes sharing a state dir form one linear chain, and fsynced. A torn last line (a
kill or power loss mid-write) is a crash, not an edit: ``verify`` reports it as
truncated, and the next writer appends an ``audit.repaired`` record naming it before
the chain goes on. Also owns reading runs back from any sequence of lines
(``summarize_runs``), which the database backend shares.

What the records *say* (events and their fields) belongs to the executor.
"""

from __future__ import annotations

import fcntl
import os
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import AuditError, StateDirError
from ..statedir import ensure_state_dir, open_private_file
from .chain import (
    KEY_ENV,
    REPAIRED_EVENT,
    ZERO_HASH,
    AuditLine,
    VerifyReport,
    chain_lines,
    parse_record,
    sha256_hex,
    verify_lines,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from pathlib import Path

__all__ = [
    "AUDIT_FILE",
    "KEY_ENV",
    "REPAIRED_EVENT",
    "ZERO_HASH",
    "AuditLine",
    "AuditLog",
    "AuditWriter",
    "RunSummary",
    "VerifyReport",
    "key_from_env",
    "list_runs",
    "read_records",
    "resolve_run_id",
    "run_records",
    "summarize_runs",
    "utc_now",
    "verify",
]

AUDIT_FILE = "audit.jsonl"

_READ_BLOCK = 64 * 1024


def key_from_env(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The HMAC key from ``RUNBOOK_AUDIT_KEY`` (UTF-8), or None when unset/empty."""
    value = (os.environ if environ is None else environ).get(KEY_ENV, "")
    return value.encode("utf-8") if value else None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """A run as ``audit list`` shows it; ``status`` is None when no ``run.finished``
    was recorded (the run is going on, or its controller died). ``resumed_from`` is
    the run a resume continues, or the run a rollback undoes."""

    run_id: str
    runbook: str
    operator: str
    started_at: str
    status: str | None = None
    duration: float | None = None
    mode: str = "run"  # run | check | drill | resume | rollback | plan
    hosts: tuple[str, ...] = ()
    lock: str | None = None
    resumed_from: str | None = None
    runbook_sha256: str = ""  # of the runbook file the run ran


class AuditWriter(Protocol):
    """Where a run appends its records: this file, or the database backend."""

    @property
    def head_hash(self) -> str: ...

    def append(self, records: Sequence[Mapping[str, Any]]) -> list[bytes]: ...

    def close(self) -> None: ...


class AuditLog:
    """An open audit log. ``append`` is safe from several threads and processes."""

    def __init__(self, *, path: Path, fd: int, key: bytes | None, run_id: str):
        self.path = path
        self.run_id = run_id
        self._fd = fd
        self._key = key
        self._mutex = threading.Lock()
        self._identity = _identity(os.fstat(fd))
        self._size = -1  # unknown: read the tail before the next write
        self._head = ZERO_HASH
        self._appended = False

    @classmethod
    def open(cls, state_dir: Path, *, key: bytes | None, run_id: str) -> AuditLog:
        """Open (creating) the log, repairing a torn last line first. Raises
        ``StateDirError`` naming the path and the cause when it cannot be used."""
        ensure_state_dir(state_dir)
        path = state_dir / AUDIT_FILE
        fd = open_private_file(path, os.O_RDWR | os.O_CREAT, append=True)
        log = cls(path=path, fd=fd, key=key, run_id=run_id)
        try:
            with log._mutex:
                log._locked_write(())
        except OSError as exc:
            log.close()
            raise StateDirError(f"audit log {path}: {exc.strerror or exc}") from exc
        return log

    @property
    def head_hash(self) -> str:
        """SHA-256 of the last line this log wrote or saw."""
        return self._head

    def append(self, records: Sequence[Mapping[str, Any]]) -> list[bytes]:
        """Chain, write (one ``write``) and fsync (once) ``records``. The caller
        supplies ``ts``, ``run_id``, ``seq``, ``event`` and the event's fields.
        Returns the lines written (without newlines), a repair record first if the
        log had a torn tail.

        Raises ``AuditError`` when the log cannot be written, except for a failure of
        this log's first append (nothing has run yet): that is ``StateDirError``."""
        if not records:
            return []
        with self._mutex:
            try:
                written = self._locked_write(records)
            except OSError as exc:
                message = f"audit log {self.path}: cannot write: {exc.strerror or exc}"
                if not self._appended:
                    raise StateDirError(message) from exc
                raise AuditError(message) from exc
            self._appended = True
        return written.strip(b"\n").split(b"\n")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _locked_write(self, records: Sequence[Mapping[str, Any]]) -> bytes:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            size, repair = self._sync_tail()
            if not records and not repair:
                return b""
            data = repair + self._encode(records)
            _write_all(self._fd, data)
            os.fsync(self._fd)
            self._size = size + len(data)
            return data
        except BaseException:
            self._size = -1  # what is on disk is unknown: read the tail next time
            raise
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _sync_tail(self) -> tuple[int, bytes]:
        """Current size, and the repair record to write first when the tail is torn.
        Reads the file only when someone else appended since our last write."""
        info = os.fstat(self._fd)
        try:
            on_disk = _identity(self.path.stat(follow_symlinks=False))
        except FileNotFoundError:
            on_disk = None
        if on_disk != self._identity:
            raise OSError(0, "the file was replaced or removed while we wrote to it")
        if info.st_size == self._size:
            return info.st_size, b""
        self._head, good_end = _scan_tail(self._fd, info.st_size)
        if good_end == info.st_size:
            return info.st_size, b""
        return info.st_size, self._repair(good_end, info.st_size)

    def _repair(self, good_end: int, size: int) -> bytes:
        torn = _pread_all(self._fd, size - good_end, good_end)
        record = {
            "ts": utc_now(),
            "run_id": self.run_id,
            "seq": 0,
            "event": REPAIRED_EVENT,
            "torn_line": _count_lines(self._fd, good_end) + 1,
            "torn_hash": sha256_hex(torn.removesuffix(b"\n")),
            "torn_bytes": len(torn),
        }
        newline = b"" if torn.endswith(b"\n") else b"\n"
        return newline + self._encode((record,))

    def _encode(self, records: Sequence[Mapping[str, Any]]) -> bytes:
        lines, self._head = chain_lines(records, self._head, self._key)
        return b"".join(line + b"\n" for line in lines)


def utc_now() -> str:
    """Timestamp for records: UTC, ISO 8601, milliseconds, ``Z``."""
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def read_records(path: Path) -> Iterator[AuditLine]:
    """Every line of the log, in order. Refuses symlinks and non-regular files."""
    fd = open_private_file(path, os.O_RDONLY, owner_only=False)
    with open(fd, "rb") as stream:
        for number, line in enumerate(stream, start=1):
            terminated = line.endswith(b"\n")
            raw = line[:-1] if terminated else line
            yield AuditLine(number, raw, parse_record(raw), terminated)


def verify(
    path: Path, key: bytes | None, *, expect_head: str | None = None
) -> VerifyReport:
    """Check the whole chain of the file (``chain.verify_lines``)."""
    return verify_lines(read_records(path), key, expect_head=expect_head)


def list_runs(path: Path) -> list[RunSummary]:
    """Runs that have a ``run.started`` record, in the order they started."""
    return summarize_runs(read_records(path))


def summarize_runs(lines: Iterable[AuditLine]) -> list[RunSummary]:
    """The runs of a chain (from any store), in the order they started."""
    runs: dict[str, RunSummary] = {}
    for line in lines:
        record = line.record
        if record is None or not line.terminated:
            continue
        run_id = str(record.get("run_id", ""))
        event = record.get("event")
        if event == "run.started":
            runs[run_id] = _started(run_id, record)
        elif event == "run.finished" and run_id in runs:
            runs[run_id] = _finished(runs[run_id], record)
    return list(runs.values())


def _started(run_id: str, record: Mapping[str, Any]) -> RunSummary:
    hosts = record.get("hosts")
    lock, resumed_from = record.get("lock"), record.get("resumed_from")
    return RunSummary(
        run_id=run_id,
        runbook=str(record.get("runbook", "")),
        runbook_sha256=str(record.get("runbook_sha256", "")),
        operator=str(record.get("operator", "")),
        started_at=str(record.get("ts", "")),
        mode=str(record.get("mode", "run")),
        hosts=tuple(str(h) for h in hosts) if isinstance(hosts, list) else (),
        lock=None if lock is None else str(lock),
        resumed_from=None if resumed_from is None else str(resumed_from),
    )


def resolve_run_id(runs: Sequence[RunSummary], wanted: str) -> str | None:
    """The run ``wanted`` names: its id, ``last`` (the most recent run), or a
    prefix of exactly one id. None when nothing matches; raises ``ValueError``
    listing the candidates when a prefix is ambiguous."""
    if wanted == "last":
        return runs[-1].run_id if runs else None
    ids = [run.run_id for run in runs]
    if wanted in ids:
        return wanted
    found = [run_id for run_id in ids if run_id.startswith(wanted)]
    if len(found) > 1:
        shown = ", ".join(found[-10:])
        more = f", and {len(found) - 10} older" if len(found) > 10 else ""
        raise ValueError(
            f"{wanted!r} is the start of {len(found)} run ids ({shown}{more})"
        )
    return found[0] if found else None


def run_records(path: Path, run_id: str) -> list[dict[str, Any]]:
    """Every complete record of one run, in log order."""
    return [
        line.record
        for line in read_records(path)
        if line.record is not None
        and line.terminated
        and line.record.get("run_id") == run_id
    ]


def _finished(run: RunSummary, record: Mapping[str, Any]) -> RunSummary:
    duration_ms = record.get("duration_ms")
    if isinstance(duration_ms, int | float) and not isinstance(duration_ms, bool):
        duration: float | None = duration_ms / 1000
    else:
        duration = _seconds_between(run.started_at, str(record.get("ts", "")))
    return replace(run, status=str(record.get("status", "")), duration=duration)


def _seconds_between(start: str, end: str) -> float | None:
    try:
        return (
            datetime.fromisoformat(end) - datetime.fromisoformat(start)
        ).total_seconds()
    except (ValueError, TypeError):
        return None


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(0, "short write")
        view = view[written:]


def _pread_all(fd: int, length: int, offset: int) -> bytes:
    chunks = []
    while length > 0:
        chunk = os.pread(fd, length, offset)
        if not chunk:
            break
        chunks.append(chunk)
        length -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _count_lines(fd: int, end: int) -> int:
    count, offset = 0, 0
    while offset < end:
        chunk = _pread_all(fd, min(_READ_BLOCK * 16, end - offset), offset)
        if not chunk:
            break
        count += chunk.count(b"\n")
        offset += len(chunk)
    return count


def _scan_tail(fd: int, size: int) -> tuple[str, int]:
    """Hash of the last complete, parseable line and the offset just after it (0 and
    zeros when there is none). Reads backwards, usually just the last line."""
    tail = _Backwards(fd, size)
    newline = tail.rfind_newline(size)
    while newline >= 0:
        previous = tail.rfind_newline(newline)
        line = tail.slice(previous + 1, newline)
        if parse_record(line) is not None:
            return sha256_hex(line), newline + 1
        newline = previous
    return ZERO_HASH, 0


class _Backwards:
    """A window on the end of the file that grows towards its start on demand."""

    def __init__(self, fd: int, end: int):
        self._fd = fd
        self._start = end
        self._buffer = b""

    def rfind_newline(self, before: int) -> int:
        """Offset of the last newline before offset ``before``, or -1."""
        while True:
            found = self._buffer.rfind(b"\n", 0, max(0, before - self._start))
            if found >= 0:
                return self._start + found
            if self._start == 0:
                return -1
            grow = max(len(self._buffer), _READ_BLOCK)
            new_start = max(0, self._start - grow)
            head = _pread_all(self._fd, self._start - new_start, new_start)
            self._buffer = head + self._buffer
            self._start = new_start

    def slice(self, begin: int, end: int) -> bytes:
        return self._buffer[begin - self._start : end - self._start]
