"""The one interface through which the engine and the CLI keep state, and how a
location picks its backend.

What a run needs from storage: an audit writer (chained, durable records), a run
state sink and saved runs (resume, rollback), a once-per-run resume claim, the
controller-side named lock, and approval grants given from elsewhere. What the
``audit`` commands need: the chain's lines, the runs, verification.

Two backends:

- files in the state dir (``filestore.FileStore``), the default, exactly what runbook
  always did;
- PostgreSQL (``pgstore.PostgresStore``), chosen by a ``postgresql://`` URL
  (``--state``, ``RUNBOOK_STATE_URL`` or ``state`` in the config), for a team
  sharing one audit trail, run states, locks and approvals.

The database modules are imported only when a URL names a database, so the default
never loads the driver. Every backend keeps the local state dir for crash files.
"""

from __future__ import annotations

import abc
import re
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..record.audit import resolve_run_id, summarize_runs
from ..record.chain import verify_lines

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from types import TracebackType

    from ..record.audit import AuditWriter, RunSummary
    from ..record.chain import AuditLine, VerifyReport
    from .locks import RunLock
    from .state import RunStateSink, SavedRun

URL_SCHEMES = ("postgresql", "postgres")
# up to the last "@" of the URL: a password written unencoded may hold / ? # @ :
_PASSWORD_IN_NETLOC = re.compile(
    r"(?P<head>://[^/@:?#\s'\"]*:)(?P<password>[^\s'\"]*)@"
)
_PASSWORD_PARAM = re.compile(r"(?P<head>[?&;\s]password=)(?P<password>[^&\s]*)", re.I)


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """An answer to an approval gate given from elsewhere (``runbook approve``):
    who gave it, when, and the word typed when the gate asks for one."""

    run_id: str
    step: str
    approved: bool
    operator: str
    granted_at: str
    confirm: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "step": self.step,
            "approved": self.approved,
            "operator": self.operator,
            "granted_at": self.granted_at,
            "confirm": self.confirm,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Grant:
        confirm = data.get("confirm")
        return cls(
            run_id=str(data["run_id"]),
            step=str(data["step"]),
            approved=bool(data["approved"]),
            operator=str(data["operator"]),
            granted_at=str(data["granted_at"]),
            confirm=None if confirm is None else str(confirm),
        )


class StateStore(abc.ABC):
    """Where audit records, run states, locks and grants live. ``location`` names
    it in messages (a path, or the URL with its password masked); ``state_dir`` is
    the local directory for crash files whatever the backend."""

    location: str
    state_dir: Path
    # True when the backend's locks free themselves when their holder dies
    locks_release_themselves: bool = False

    # -- writing a run ---------------------------------------------------------------

    @abc.abstractmethod
    def open_audit(self, run_id: str) -> AuditWriter:
        """A writer whose appends are durable when they return. Raises a
        ``NoGoError`` or ``InputError`` naming the cause when it cannot be used."""

    @abc.abstractmethod
    def state_sink(self, run_id: str) -> RunStateSink:
        """Where run ``run_id`` saves what ``resume`` and ``rollback`` need."""

    @abc.abstractmethod
    def controller_lock(self, name: str) -> RunLock:
        """The named lock on the controller side (taken before any host's)."""

    @abc.abstractmethod
    def claim_resume(self, run_id: str, by: str) -> None:
        """Record that run ``by`` resumes ``run_id``; raises ``ResumeError`` naming
        the first one when it was already resumed (atomic: once per run)."""

    # -- reading ---------------------------------------------------------------------

    @abc.abstractmethod
    def read_lines(self, after: int = 0) -> Iterator[AuditLine]:
        """The chain's lines numbered above ``after``, in order."""

    @abc.abstractmethod
    def audit_missing(self) -> str | None:
        """Why there is no audit trail to read ("... does not exist"), or None."""

    @abc.abstractmethod
    def where(self, line: int) -> str:
        """How a message names line ``line`` of the chain."""

    @abc.abstractmethod
    def load_saved_run(self, run_id: str) -> SavedRun:
        """Run ``run_id``'s saved state; ``ResumeError`` when there is none."""

    def list_runs(self) -> list[RunSummary]:
        """Runs that have a ``run.started`` record, in the order they started."""
        return summarize_runs(self.read_lines())

    def find_run(self, wanted: str) -> RunSummary:
        """The run ``wanted`` names: its id, ``last`` or a unique prefix of one;
        else ``InputError`` (exit 2) saying what to give instead."""
        runs = self.list_runs()
        try:
            run_id = resolve_run_id(runs, wanted)
        except ValueError as exc:
            raise InputError(f"{exc}: give more of it") from None
        if run_id is None:
            raise InputError(
                f"no run {wanted!r} in the audit log {self.location}"
                " (see `runbook audit list`)"
            )
        return next(run for run in runs if run.run_id == run_id)

    def run_records(self, run_id: str) -> list[dict[str, Any]]:
        """Every complete record of one run, in chain order."""
        return [
            line.record
            for line in self.read_lines()
            if line.record is not None
            and line.terminated
            and line.record.get("run_id") == run_id
        ]

    def verify(
        self, key: bytes | None, *, expect_head: str | None = None
    ) -> VerifyReport:
        """Check the whole chain where it is stored (``chain.verify_lines``)."""
        return verify_lines(self.read_lines(), key, expect_head=expect_head)

    # -- approvals -------------------------------------------------------------------

    @abc.abstractmethod
    def put_grant(self, grant: Grant) -> Grant | None:
        """Store ``grant`` unless the step already has one: then return that one
        (a gate is answered once) and store nothing."""

    @abc.abstractmethod
    def find_grant(self, run_id: str, step: str) -> Grant | None:
        """The answer given to run ``run_id``'s gate ``step``, if any."""

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:  # noqa: B027 (the file backend holds nothing open)
        """Release what the store holds (the database connection, its locks)."""

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_store(state_dir: Path, url: str | None = None) -> StateStore:
    """The store a location names: the database at ``url``, else the files in
    ``state_dir``. A malformed URL is ``InputError``; a database that cannot be
    reached is ``StateStoreError`` (exit 2, nothing ran), with the cause."""
    if not url:
        from .filestore import FileStore

        return FileStore(state_dir)
    check_state_url(url)
    from .pgstore import PostgresStore

    return PostgresStore.connect(url, state_dir=state_dir)


def check_state_url(url: str) -> None:
    """Refuse (exit 2) what is not a ``postgresql://`` URL, before connecting."""
    try:
        scheme = urllib.parse.urlsplit(url).scheme.lower()
    except ValueError as exc:  # "Invalid IPv6 URL"
        raise InputError(f"state location {mask_url(url)!r}: {exc}") from None
    if scheme not in URL_SCHEMES:
        raise InputError(
            f"state location {mask_url(url)!r}: expected a postgresql:// URL, e.g."
            " postgresql://runbook@db.internal/runbook (for files, use --state-dir)"
        )


def mask_url(text: str) -> str:
    """``text`` with any password in a database URL or ``password=`` parameter
    shown as ``***``: the one way a state location is printed."""
    text = _PASSWORD_IN_NETLOC.sub(lambda m: f"{m['head']}***@", text)
    return _PASSWORD_PARAM.sub(lambda m: f"{m['head']}***", text)


def url_password(url: str) -> str | None:
    """The password a URL carries (for the masker), if any, decoded; one written
    unencoded may hold any character but the last ``@``."""
    written = re.match(r"^[A-Za-z0-9+.-]+://[^/@:]*:(?P<password>.*)@[^@]*$", url, re.S)
    if written and written["password"]:
        return urllib.parse.unquote(written["password"])
    try:
        query = urllib.parse.urlsplit(url).query
    except ValueError:
        return None
    for key, value in urllib.parse.parse_qsl(query):
        if key.lower() == "password" and value:
            return value
    return None
