"""The default store: files in the state dir, as runbook always kept them.

``audit.jsonl`` (``record/audit.py``), ``runs/<run_id>.jsonl`` (``state.py``),
``runs/<run_id>.resumed-by`` (the resume claim), ``locks/<name>.lock``
(``locks.LocalLock``) and ``grants/<run_id>.<step>.json`` (approvals given with
``runbook approve``). Every file is opened through ``statedir`` (0600, no
symlinks, ours only).
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING

from ..errors import ResumeError, StateDirError
from ..record.audit import AUDIT_FILE, AuditLog, key_from_env, list_runs, read_records
from ..record.audit import verify as verify_file
from ..statedir import ensure_state_dir, open_private_file
from .locks import LocalLock
from .state import StateSink, is_run_id, load_saved_run, runs_dir
from .store import Grant, StateStore

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from ..record.audit import RunSummary
    from ..record.chain import AuditLine, VerifyReport
    from .state import SavedRun

GRANTS_DIR = "grants"
_STEP_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\Z")
_MAX_GRANT = 64 * 1024


class FileStore(StateStore):
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.location = str(state_dir)
        self.audit_path = state_dir / AUDIT_FILE

    def open_audit(self, run_id: str) -> AuditLog:
        ensure_state_dir(self.state_dir)
        return AuditLog.open(self.state_dir, key=key_from_env(), run_id=run_id)

    def state_sink(self, run_id: str) -> StateSink:
        return StateSink(self.state_dir, run_id)

    def controller_lock(self, name: str) -> LocalLock:
        return LocalLock(self.state_dir, name)

    def claim_resume(self, run_id: str, by: str) -> None:
        """The claim is a file made with O_EXCL: atomic on this state dir."""
        ensure_state_dir(self.state_dir)
        marker = runs_dir(self.state_dir) / f"{run_id}.resumed-by"
        marker.parent.mkdir(mode=0o700, exist_ok=True)
        try:
            fd = os.open(
                marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
            )
        except FileExistsError:
            first = marker.read_text(encoding="utf-8", errors="replace").strip()
            raise ResumeError(
                f"run {run_id} was already resumed as run {first}: resume that one"
            ) from None
        with os.fdopen(fd, "w") as handle:
            handle.write(by + "\n")

    def read_lines(self, after: int = 0) -> Iterator[AuditLine]:
        if not self.audit_path.exists():
            return
        for line in read_records(self.audit_path):
            if line.number > after:
                yield line

    def audit_missing(self) -> str | None:
        return None if self.audit_path.exists() else f"{self.audit_path} does not exist"

    def where(self, line: int) -> str:
        return f"{self.audit_path}:{line}"

    def list_runs(self) -> list[RunSummary]:
        return list_runs(self.audit_path) if self.audit_path.exists() else []

    def verify(
        self, key: bytes | None, *, expect_head: str | None = None
    ) -> VerifyReport:
        return verify_file(self.audit_path, key, expect_head=expect_head)

    def load_saved_run(self, run_id: str) -> SavedRun:
        return load_saved_run(self.state_dir, run_id)

    # -- approvals: one file per answered gate, published atomically ------------------

    def put_grant(self, grant: Grant) -> Grant | None:
        path = self._grant_path(grant.run_id, grant.step)
        ensure_state_dir(self.state_dir)
        ensure_state_dir(path.parent)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.unlink(missing_ok=True)
        fd = open_private_file(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            with open(fd, "w", encoding="utf-8") as stream:
                json.dump(grant.to_record(), stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.link(temp, path)  # fails when the gate was answered already
        except FileExistsError:
            return self.find_grant(grant.run_id, grant.step)
        finally:
            temp.unlink(missing_ok=True)
        return None

    def find_grant(self, run_id: str, step: str) -> Grant | None:
        path = self._grant_path(run_id, step)
        try:
            path.lstat()
        except FileNotFoundError:
            return None
        fd = open_private_file(path, os.O_RDONLY)
        with open(fd, "rb") as stream:
            try:
                return Grant.from_record(json.loads(stream.read(_MAX_GRANT)))
            except (ValueError, KeyError, TypeError) as exc:
                raise StateDirError(f"{path}: not a grant ({exc})") from None

    def _grant_path(self, run_id: str, step: str) -> Path:
        if not is_run_id(run_id) or not _STEP_ID.match(step):
            raise ResumeError(f"no run {run_id!r} with a step {step!r}")
        return self.state_dir / GRANTS_DIR / f"{run_id}.{step}.json"
