"""What earlier runs did, as far as ``resume`` and ``rollback RUN_ID`` must know.

A resumed run and the runs it resumed are one release: its completed steps are theirs
together (``Release``), and rolling it back undoes all of them, newest first, in one
saga. Undos that a run's own rollback, or an earlier ``runbook rollback``, already did
are not done again.

A rollback must never do harm, so it is refused (unless ``--force``) when:

- the run was resumed later (roll back the newest run of the release instead);
- it was already rolled back, automatically when it failed or by an earlier
  ``runbook rollback`` (the message names the run that did it);
- newer runs changed the same hosts under the same lock (or, without a lock, with the
  same runbook) and are still in effect: undoing an old release under them would, for
  example, migrate a database from under a newer one. Newer runs that are no longer
  in effect do not count: checks, plans, no-gos, runs that rolled themselves back,
  runs rolled back since, and those rollbacks themselves.

This module reads the runs and their saved states through the store (files or
database alike); it changes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ResumeError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..record.audit import RunSummary
    from ..record.results import StepResult
    from .request import RunRequest
    from .state import SavedRun
    from .store import StateStore

_MAX_CHAIN = 100  # resumes of resumes; more than this is a corrupted state dir
_NOT_IN_EFFECT = ("no_go", "rolled_back")
_READ_ONLY_MODES = ("check", "plan")


@dataclass(slots=True, kw_only=True)
class Release:
    """A run and the runs it resumed, oldest first: what is done and not undone."""

    runs: list[SavedRun]
    results: dict[tuple[str, str], StepResult] = field(default_factory=dict)
    # failed or cut short (not done again by a later run of the release)
    attempted: dict[tuple[str, str], StepResult] = field(default_factory=dict)

    @property
    def latest(self) -> SavedRun:
        return self.runs[-1]

    @property
    def ids(self) -> list[str]:
        return [run.run_id for run in self.runs]


def load_release(
    store: StateStore,
    run_id: str,
    *,
    summaries: list[RunSummary] | None = None,
    redo_undone: bool = False,
) -> Release:
    """The release ``run_id`` belongs to, up to and including ``run_id``, with
    what rollbacks of it undid taken away (kept with ``redo_undone``: a forced
    rollback undoes everything again)."""
    chain = [store.load_saved_run(run_id)]
    while chain[0].mode == "resume" and chain[0].resumed_from:
        if len(chain) >= _MAX_CHAIN:
            raise ResumeError(f"run {run_id}: its resume chain is too long")
        chain.insert(0, store.load_saved_run(chain[0].resumed_from))
    release = Release(runs=chain)
    for saved in chain:
        release.results.update(saved.results)
        release.attempted.update(saved.attempted)
    for key in release.results:
        release.attempted.pop(key, None)  # a later run of the release did it
    if redo_undone:
        return release
    for saved in chain:
        for key in saved.undone:
            release.results.pop(key, None)
            release.attempted.pop(key, None)
    ids = set(release.ids)
    for rollback in _rollbacks_of(ids, summaries or store.list_runs()):
        try:
            undone = store.load_saved_run(rollback.run_id).undone
        except ResumeError:
            continue  # its state is gone: the audit log still tells it happened
        for key in undone:
            release.results.pop(key, None)
            release.attempted.pop(key, None)
    return release


def rollback_refusal(release: Release, summaries: list[RunSummary]) -> str | None:
    """Why rolling back ``release`` would do harm, or None."""
    asked = release.latest.run_id
    later = _resumed_as(asked, summaries)
    if later is not None:
        return (
            f"run {asked} was resumed as run {later}: roll back {later} instead,"
            " it undoes both as one release"
        )
    if release.latest.status is not None and release.latest.status.value == (
        "rolled_back"
    ):
        return f"run {asked} was already rolled back, automatically, when it failed"
    for rollback in _rollbacks_of(set(release.ids), summaries):
        if rollback.status == "rolled_back":
            return (
                f"run {asked} was already rolled back by run {rollback.run_id}"
                f" (see `runbook audit show {rollback.run_id}`)"
            )
    newer = newer_runs(release, summaries)
    if newer:
        listed = "; ".join(_describe(run) for run in newer)
        return (
            f"run {asked} has newer runs on the same hosts that are still in effect:"
            f" {listed}. Rolling it back under them could destroy their work: roll"
            " them back first (newest first)"
        )
    return None


def newer_runs(release: Release, summaries: list[RunSummary]) -> list[RunSummary]:
    """Runs after the release, on its hosts and lock, that are still in effect."""
    ids = set(release.ids)
    order = [s.run_id for s in summaries]
    last = max((order.index(i) for i in ids if i in order), default=-1)
    mine = next((s for s in summaries if s.run_id == release.latest.run_id), None)
    if mine is None:
        return []
    after = [s for s in summaries[last + 1 :] if _same_target(mine, s)]
    undone = {
        s.resumed_from
        for s in after
        if s.mode == "rollback" and s.status == "rolled_back"
    }
    return [
        s
        for s in after
        if s.mode not in _READ_ONLY_MODES
        and s.status not in _NOT_IN_EFFECT
        and s.run_id not in undone
        and not (s.mode == "rollback" and (s.resumed_from in undone | ids))
    ]


def _same_target(mine: RunSummary, other: RunSummary) -> bool:
    if not set(mine.hosts) & set(other.hosts):
        return False
    if mine.lock or other.lock:
        return mine.lock == other.lock
    return mine.runbook == other.runbook


def _resumed_as(run_id: str, summaries: list[RunSummary]) -> str | None:
    return next(
        (
            s.run_id
            for s in summaries
            if s.mode == "resume" and s.resumed_from == run_id
        ),
        None,
    )


def _rollbacks_of(ids: set[str], summaries: Iterable[RunSummary]) -> list[RunSummary]:
    return [s for s in summaries if s.mode == "rollback" and s.resumed_from in ids]


def _describe(run: RunSummary) -> str:
    status = run.status or "unfinished"
    return f"{run.run_id} ({run.mode}, {status}, started {run.started_at})"


# -- the request to continue or undo a run ------------------------------------------

_NOT_RESUMABLE = {
    "succeeded": "it succeeded: there is nothing left to do",
    "rolled_back": "it was rolled back: start a new run",
    "rollback_failed": "its rollback failed: fix what it listed, then run again",
}


def _not_undoable(run: SavedRun) -> str | None:
    """Why ``runbook rollback`` of ``run`` makes no sense, even with --force."""
    if run.mode == "rollback":
        return (
            f"it is a rollback of run {run.resumed_from}; to finish that one,"
            f" `runbook rollback {run.resumed_from}`"
        )
    if run.mode in _READ_ONLY_MODES:
        return f"a {run.mode} changes nothing, so there is nothing to undo"
    return None


def _not_resumable(run: SavedRun) -> str | None:
    """Why resuming ``run`` would be wrong: a resume goes forward, so only a run
    that stopped going forward can be resumed."""
    status = run.status.value if run.status else None
    if status in _NOT_RESUMABLE:
        return _NOT_RESUMABLE[status]
    if run.mode == "rollback":
        return (
            f"it is a rollback of run {run.resumed_from}: continue it with"
            f" `runbook rollback {run.resumed_from}` (undos already done are not"
            " done again)"
        )
    if run.mode in _READ_ONLY_MODES:
        return f"a {run.mode} changes nothing: run it again"
    if run.mode == "drill":
        return (
            "a drill is not resumed: undo what it did with"
            f" `runbook rollback {run.run_id}`"
        )
    if run.rollback_started:
        return (
            "its rollback had begun when it stopped: finish it with"
            f" `runbook rollback {run.run_id}` (undos already done are not done again)"
        )
    return None


def saved_request(
    store: StateStore,
    run_id: str,
    *,
    mode: str,
    force: bool,
    yes: bool = False,
    approve: frozenset[str] = frozenset(),
    command_line: str = "",
    audit_forward: str | None = None,
) -> RunRequest:
    """The request that resumes (``mode="resume"``) or rolls back
    (``mode="rollback"``) run ``run_id``, from its saved state; raises
    ``ResumeError`` (exit 2, nothing runs) when that would be wrong."""
    summaries = store.list_runs()  # the audit log, read once
    release, notices = _release_to(store, run_id, summaries, mode=mode, force=force)
    latest = release.latest
    _check_against_audit(summaries, latest)
    path = _runbook_path(latest)
    changed = _check_unchanged(run_id, path, latest, mode=mode, force=force)
    if changed:
        notices.append(("runbook.changed", f"--force: {changed}"))
    inventory = latest.header.get("inventory")
    from .executor import RunOptions
    from .request import RunRequest

    return RunRequest(
        runbook=path,
        given_params=latest.header.get("params") or {},
        inventory=Path(inventory) if inventory else None,
        limit=latest.header.get("limit"),
        state_dir=store.state_dir,
        options=RunOptions(
            skip=frozenset(release.results), rollback_only=mode == "rollback"
        ),
        yes=yes,
        approve=approve,
        mode=mode,
        resumed_from=run_id,
        command_line=command_line,
        # a rollback also undoes the steps cut short that have undo_on_failure
        completed=(
            {**release.attempted, **release.results}
            if mode == "rollback"
            else release.results
        ),
        notices=tuple(notices),
        audit_forward=audit_forward,
    )


def _release_to(
    store: StateStore,
    run_id: str,
    summaries: list[RunSummary],
    *,
    mode: str,
    force: bool,
) -> tuple[Release, list[tuple[str, str]]]:
    """The release ``mode`` would act on, and the notices a --force owes the audit
    log; ``ResumeError`` when it must not."""
    release = load_release(store, run_id, summaries=summaries)
    if mode == "resume":
        why = _not_resumable(release.latest)
        if why:
            raise ResumeError(f"run {run_id} cannot be resumed: {why}")
        return release, []
    why = _not_undoable(release.latest)
    if why:
        raise ResumeError(f"run {run_id} cannot be rolled back: {why}")
    refusal = rollback_refusal(release, summaries)
    if refusal is None:
        return release, []
    if not force:
        raise ResumeError(f"{refusal}; use --force to roll back anyway")
    forced = load_release(store, run_id, summaries=summaries, redo_undone=True)
    return forced, [("rollback.forced", f"--force: {refusal}")]


def _check_against_audit(summaries: list[RunSummary], saved: SavedRun) -> None:
    """The saved state is a convenience copy; the audit chain is the record. A state
    whose runbook (path or hash) is not the one the run's ``run.started`` record
    names was edited, or imported from somewhere else: never run from it."""
    started = next((s for s in summaries if s.run_id == saved.run_id), None)
    if started is None:
        raise ResumeError(f"run {saved.run_id}: no run.started record in the audit log")
    for field_name in ("runbook", "runbook_sha256"):
        recorded = getattr(started, field_name)
        if recorded != str(saved.header.get(field_name) or ""):
            raise ResumeError(
                f"run {saved.run_id}: its saved state names {field_name}"
                f" {saved.header.get(field_name)!r}, its audit record"
                f" {recorded!r}: the state was changed; refusing to"
                " run from it (`runbook audit show` has what really ran)"
            )


def _runbook_path(saved: SavedRun) -> Path:
    """The runbook a run ran: recorded absolute (older runs: relative to where they
    were started, which we can only hope is here)."""
    return Path(saved.runbook)


def _check_unchanged(
    run_id: str, path: Path, saved: SavedRun, *, mode: str, force: bool
) -> str | None:
    """None when the runbook is the one the run ran; what changed when ``force``
    accepts a changed one (audited as a notice); ``ResumeError`` otherwise."""
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ResumeError(
            f"run {run_id}: cannot read its runbook {path}: {exc.strerror}"
        ) from None
    recorded = saved.header.get("runbook_sha256")
    if digest == recorded:
        return None
    changed = (
        f"runbook {path} changed since run {run_id}"
        f" (sha256 {str(recorded)[:12]} then, {digest[:12]} now)"
    )
    if not force:
        raise ResumeError(f"{changed}; use --force to {mode} anyway")
    return changed
