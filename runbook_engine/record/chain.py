"""The audit chain itself, whatever stores it: how records become chained lines, and
how a sequence of lines is checked.

A line is one compact JSON object; each record's ``prev_hash`` is the SHA-256 hex of
the previous line's bytes (64 zeros for the first line); with a key
(``RUNBOOK_AUDIT_KEY``) each record also ends with an ``hmac`` field, HMAC-SHA256
over the line's bytes without that trailing ``,"hmac":"..."``. The JSONL file
(``audit.py``) and the database backend store these exact bytes, so a chain read
from either verifies with the same ``ChainChecker``, and an export of one is a valid
file of the other.

Where lines live, how appends are serialized and made durable, belongs to the
stores; what records *say* belongs to the executor.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

ZERO_HASH = "0" * 64
REPAIRED_EVENT = "audit.repaired"
KEY_ENV = "RUNBOOK_AUDIT_KEY"

_HMAC_TAIL = re.compile(rb',"hmac":"([0-9a-f]{64})"\}\Z')


def _jsonable(value: object) -> object:
    """Last resort for values json does not know; raw bytes never reach the log."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"audit record field of type {type(value).__name__}")


_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_jsonable
)
# For strings holding lone surrogates (undecodable bytes kept by surrogateescape):
# \\udcxx escapes keep the line valid UTF-8 and still valid JSON.
_ASCII_ENCODER = json.JSONEncoder(
    ensure_ascii=True, separators=(",", ":"), allow_nan=False, default=_jsonable
)


@dataclass(frozen=True, slots=True)
class AuditLine:
    """One line as stored: ``raw`` without its newline, ``record`` None when the
    line is not a JSON object, ``terminated`` False for a last line with no newline.
    ``number`` is the line's position in the chain (1 for the first)."""

    number: int
    raw: bytes
    record: dict[str, Any] | None
    terminated: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    """``head_hash`` is the SHA-256 of the last complete record line: the value the
    next record's ``prev_hash`` will hold. ``truncated_line`` names a torn tail (a
    crash, so ``ok`` stays True); ``first_bad_line`` and ``reason`` an edit."""

    ok: bool
    records: int
    head_hash: str
    first_bad_line: int | None = None
    reason: str | None = None
    truncated_line: int | None = None
    keyed: bool = False
    expected_at: int | None = None  # the record whose hash is the expected head
    unchecked_hmacs: int = 0  # records that carry an hmac no key was given to check


def chain_lines(
    records: Sequence[Mapping[str, Any]], head: str, key: bytes | None
) -> tuple[list[bytes], str]:
    """``records`` as lines (without newlines) chained after ``head``, and the new
    head. The caller supplies ``ts``, ``run_id``, ``seq``, ``event`` and the event's
    fields; ``prev_hash`` and ``hmac`` are added here and nowhere else."""
    lines = []
    for record in records:
        if "prev_hash" in record or "hmac" in record:
            raise ValueError("prev_hash and hmac are added by the audit log")
        line = dump_record({**record, "prev_hash": head})
        if key is not None:
            mac = hmac.new(key, line, hashlib.sha256).hexdigest()
            line = line[:-1] + b',"hmac":"' + mac.encode() + b'"}'
        head = sha256_hex(line)
        lines.append(line)
    return lines, head


def verify_lines(
    lines: Iterable[AuditLine], key: bytes | None, *, expect_head: str | None = None
) -> VerifyReport:
    """Check a whole chain (and every HMAC when ``key`` is given). With
    ``expect_head`` (a head hash kept from an earlier verify), the chain must still
    hold that record: when it does not, records were cut off the end (or the chain
    was rewritten), which the chain alone cannot tell."""
    checker = ChainChecker(key, expect_head)
    for line in lines:
        if not checker.feed(line):
            break
    return checker.report()


class ChainChecker:
    """Walks lines once. Invalid lines are held as a possible torn span: they are
    fine if an ``audit.repaired`` record naming them follows, or if they end the
    chain (a crash); anything else is an edit."""

    def __init__(self, key: bytes | None, expect_head: str | None = None):
        self._key = key
        self._expect = expect_head
        self._expected_at: int | None = None
        self._head = ZERO_HASH
        self._head_line = 0
        self._records = 0
        self._span: list[AuditLine] = []
        self._bad: tuple[int, str] | None = None
        self._unchecked = 0

    def feed(self, line: AuditLine) -> bool:
        if line.record is None or not line.terminated:
            self._span.append(line)
            return True
        if self._span and not self._repairs_span(line.record):
            return self._fail(self._span[0].number, _invalid_reason(self._span[0]))
        self._span = []
        problem = self._check(line)
        if problem is not None:
            return self._fail(line.number, problem)
        self._head, self._head_line = sha256_hex(line.raw), line.number
        self._records += 1
        if self._key is None and _HMAC_TAIL.search(line.raw):
            self._unchecked += 1
        if self._expect and self._head.startswith(self._expect):  # a prefix will do
            self._expected_at = self._records
        return True

    def report(self) -> VerifyReport:
        if self._bad is None and self._expect and self._expected_at is None:
            self._bad = (
                0,
                f"no record has the expected head {self._expect}: records were cut"
                " off the end of the log, or it was rewritten",
            )
        bad_line, reason = self._bad if self._bad else (None, None)
        truncated = self._span[0].number if self._span and not self._bad else None
        return VerifyReport(
            ok=self._bad is None,
            records=self._records,
            head_hash=self._head,
            first_bad_line=bad_line,
            reason=reason,
            truncated_line=truncated,
            keyed=self._key is not None,
            expected_at=self._expected_at,
            unchecked_hmacs=self._unchecked,
        )

    def _fail(self, number: int, reason: str) -> bool:
        self._bad = (number, reason)
        return False

    def _repairs_span(self, record: Mapping[str, Any]) -> bool:
        torn = b"\n".join(line.raw for line in self._span)
        return (
            record.get("event") == REPAIRED_EVENT
            and record.get("torn_line") == self._span[0].number
            and record.get("torn_hash") == sha256_hex(torn)
        )

    def _check(self, line: AuditLine) -> str | None:
        assert line.record is not None
        prev_hash = line.record.get("prev_hash")
        if not isinstance(prev_hash, str):
            return f"line {line.number}: not an audit record (no prev_hash)"
        if prev_hash != self._head:
            return _link_reason(line.number, self._head_line)
        if self._key is not None:
            return _hmac_problem(line, self._key)
        return None


def _link_reason(number: int, previous: int) -> str:
    if previous == 0:
        return (
            f"line {number}: prev_hash should be 64 zeros for the first record: "
            "lines were deleted from the start of the log"
        )
    return (
        f"line {number}: prev_hash does not match the hash of line {previous}: "
        f"line {previous} was edited, or lines were deleted, inserted or reordered "
        f"between lines {previous} and {number}"
    )


def _invalid_reason(line: AuditLine) -> str:
    return f"line {line.number}: not a valid JSON record (edited or corrupted)"


def _hmac_problem(line: AuditLine, key: bytes) -> str | None:
    match = _HMAC_TAIL.search(line.raw)
    if match is None:
        return f"line {line.number}: no hmac (written without {KEY_ENV})"
    body = line.raw[: match.start()] + b"}"
    expected = hmac.new(key, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), match.group(1)):
        return (
            f"line {line.number}: hmac does not match: the record was rewritten, "
            f"or {KEY_ENV} differs from the key it was written with"
        )
    return None


def dump_record(record: Mapping[str, Any]) -> bytes:
    """One record as a compact JSON line (no newline)."""
    try:
        return _ENCODER.encode(record).encode("utf-8")
    except UnicodeEncodeError:
        return _ASCII_ENCODER.encode(record).encode("ascii")


def parse_record(raw: bytes) -> dict[str, Any] | None:
    """The JSON object a line holds, or None when it is not one."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
