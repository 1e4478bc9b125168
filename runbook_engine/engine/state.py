"""Saved run state for ``runbook resume`` and ``runbook rollback RUN_ID``.

What is kept, and how a saved run is read back, is this module's, whatever stores
it: masked, the run's header (runbook path and SHA-256, params without secret values,
inventory, hosts) and every step and undo outcome with the output tails later
templates need. In the file backend it is ``<state_dir>/runs/<run_id>.jsonl``
(``StateSink``), flushed at every barrier; the audit log, not this file, is the
durable record. Secrets are never saved: a resumed run reads them again from their
sources.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ResumeError
from ..record.events import Event, RunStarted, RunStatus, Status, StepFinished
from ..record.results import StepResult
from ..statedir import ensure_state_dir, open_private_file

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path


_KEPT = {
    "run.started",
    "step.finished",
    "undo.finished",
    "rollback.started",
    "run.finished",
}


def runs_dir(state_dir: Path) -> Path:
    return state_dir / "runs"


class RunStateSink(Protocol):
    """Where a run's state goes (an ``EventSink``); ``failure`` says why it stopped
    being saved (resume unavailable), None while it is."""

    failure: str | None

    def emit(self, event: Event) -> None: ...

    def barrier(self) -> None: ...

    def close(self) -> None: ...


class StateSink:
    """Writes the run state to ``runs/<run_id>.jsonl``. A write error (disk full)
    disables it, with a warning in ``failure``: the audit log, not this file,
    decides whether the run goes on."""

    def __init__(self, state_dir: Path, run_id: str) -> None:
        directory = runs_dir(state_dir)
        directory.mkdir(mode=0o700, exist_ok=True)
        ensure_state_dir(directory)
        fd = open_private_file(
            directory / f"{run_id}.jsonl", os.O_WRONLY | os.O_CREAT, append=True
        )
        self._file = os.fdopen(fd, "a", encoding="utf-8")
        self._lock = threading.Lock()
        self.failure: str | None = None

    def emit(self, event: Event) -> None:
        line = state_line(event)
        if line is None:
            return
        with self._lock:
            self._guarded(lambda: self._file.write(line + "\n"))

    def barrier(self) -> None:
        with self._lock:
            self._guarded(self._file.flush)

    def close(self) -> None:
        with self._lock:
            self._guarded(self._file.close)

    def _guarded(self, action: Callable[[], object]) -> None:
        if self.failure is not None:
            return
        try:
            action()
        except OSError as exc:
            self.failure = (
                f"run state not saved (resume unavailable): {exc.strerror or exc}"
            )


def _plain(value: object) -> object:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


@dataclass(slots=True, kw_only=True)
class SavedRun:
    run_id: str
    header: dict[str, Any]
    status: RunStatus | None  # None: the run never finished (crash, kill -9)
    # completed steps (host, step) -> result, and those whose undo succeeded since
    results: dict[tuple[str, str], StepResult] = field(default_factory=dict)
    undone: set[tuple[str, str]] = field(default_factory=set)
    # steps that failed or were cut short: undone too when they have undo_on_failure
    attempted: dict[tuple[str, str], StepResult] = field(default_factory=dict)
    rollback_started: bool = False  # its rollback began (and may not have finished)

    @property
    def runbook(self) -> str:
        return str(self.header["runbook"])

    @property
    def mode(self) -> str:
        return str(self.header.get("mode") or "run")

    @property
    def resumed_from(self) -> str | None:
        value = self.header.get("resumed_from")
        return None if value is None else str(value)

    @property
    def hosts(self) -> list[str]:
        return list(self.header.get("hosts") or [])


def load_saved_run(state_dir: Path, run_id: str) -> SavedRun:
    path = runs_dir(state_dir) / f"{run_id}.jsonl"
    if not is_run_id(run_id) or not path.is_file():
        raise ResumeError(f"no saved state for run {run_id!r} in {runs_dir(state_dir)}")
    with open(path, encoding="utf-8", errors="replace") as handle:
        return saved_run_from_lines(run_id, handle)


def saved_run_from_lines(run_id: str, lines: Iterable[str]) -> SavedRun:
    """A run's saved state from its lines (the file's, or the database's rows)."""
    saved: SavedRun | None = None
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a torn last line after a kill
        saved = _apply(saved, run_id, record)
    if saved is None:
        raise ResumeError(f"run {run_id!r}: saved state is empty")
    return saved


def is_run_id(text: str) -> bool:
    """A run id is letters, digits and dashes: safe in a file name."""
    return text.replace("-", "").isalnum()


def state_line(event: Event) -> str | None:
    """The line the run state keeps for ``event``, or None when it keeps nothing."""
    if event.name not in _KEPT:
        return None
    record = {"event": event.name, **event.record()}
    return json.dumps(record, default=_plain, ensure_ascii=False)


def _apply(
    saved: SavedRun | None, run_id: str, record: dict[str, Any]
) -> SavedRun | None:
    event = record.get("event")
    if event == RunStarted.name:
        return SavedRun(run_id=run_id, header=record, status=None)
    if saved is None:
        return None
    if event == StepFinished.name and record.get("phase") in ("steps", "verify"):
        status = Status(record["status"])
        key = (record["host"], record["step"])
        if status.succeeded:
            saved.results[key] = StepResult.from_record(record)
            saved.attempted.pop(key, None)
        else:
            saved.results.pop(key, None)
            if status in (Status.FAILED, Status.UNKNOWN):
                saved.attempted[key] = StepResult.from_record(record)
    elif event == "undo.finished" and record.get("status") in ("ok", "changed"):
        saved.undone.add((record["host"], record["step"]))
    elif event == "rollback.started":
        saved.rollback_started = True
    elif event == "run.finished":
        saved.status = RunStatus(record["status"])
    return saved
