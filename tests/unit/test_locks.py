"""Run locks on the controller (files) and on hosts (directories via a Transport)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from runbook_engine.engine.locks import (
    LocalLock,
    LockHolder,
    RemoteLock,
    RunLock,
    break_lock,
)
from runbook_engine.errors import (
    ExitCode,
    InputError,
    LockHeldError,
    NoGoError,
    StateDirError,
)
from runbook_engine.transports.local import LocalTransport

REPO = Path(__file__).resolve().parents[2]


def _owner(run_id: str, operator: str = "alice") -> LockHolder:
    return LockHolder.current(run_id=run_id, operator=operator)


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _stale(run_id: str) -> LockHolder:
    return replace(_owner(run_id, "carol"), pid=_dead_pid(), pid_start=None)


def _elsewhere(run_id: str) -> LockHolder:
    return replace(_owner(run_id, "dave"), host="other-controller")


@pytest.fixture(params=["local", "remote"])
def lock(request: pytest.FixtureRequest, tmp_path: Path) -> RunLock:
    if request.param == "local":
        return LocalLock(tmp_path / "state", "deploy")
    transport = LocalTransport("web1")
    return RemoteLock(transport, "deploy", lock_dir=str(tmp_path / "remote locks'$x"))


def test_lock_is_taken_and_records_its_holder(lock: RunLock) -> None:
    owner = _owner("run-1")
    lock.acquire(owner)
    assert lock.holder() == owner
    assert (owner.host, owner.pid) == (socket.gethostname(), os.getpid())
    assert owner.since.endswith("Z")


def test_held_lock_names_holder_and_since(lock: RunLock) -> None:
    first = _owner("run-1", "alice")
    lock.acquire(first)
    with pytest.raises(LockHeldError) as caught:
        lock.acquire(_owner("run-2", "bob"))
    message = str(caught.value)
    assert caught.value.exit_code == ExitCode.NO_GO
    for part in ("'deploy'", "alice", "run-1", first.host, str(first.pid), first.since):
        assert part in message
    assert "stale" not in message
    assert lock.holder() == first


def test_stale_lock_gives_the_unlock_command_and_is_kept(lock: RunLock) -> None:
    stale = _stale("run-old")
    lock.acquire(stale)
    with pytest.raises(LockHeldError) as caught:
        lock.acquire(_owner("run-2"))
    message = str(caught.value)
    assert "stale" in message
    assert f"{lock.unlock_command()}" in message
    assert message.count("runbook unlock deploy") == 1
    assert lock.holder() == stale  # never broken automatically


def test_release_only_frees_our_own_lock(lock: RunLock) -> None:
    ours = _owner("run-1")
    lock.acquire(ours)
    assert lock.release(_owner("run-2")) is False
    assert lock.holder() == ours
    assert lock.release(ours) is True
    assert lock.holder() is None
    lock.acquire(_owner("run-3"))


def test_breaking_a_live_holder_needs_its_run_id(lock: RunLock) -> None:
    holder = _owner("run-1")  # this very process: alive
    lock.acquire(holder)
    with pytest.raises(LockHeldError, match="--force run-1"):
        break_lock(lock)
    with pytest.raises(LockHeldError, match="does not match"):
        break_lock(lock, force="run-9")
    assert lock.holder() == holder
    assert break_lock(lock, force="run-1") == holder
    assert lock.holder() is None


def test_holder_on_another_controller_is_assumed_alive(lock: RunLock) -> None:
    holder = _elsewhere("run-1")
    lock.acquire(holder)
    with pytest.raises(LockHeldError, match="not on this controller"):
        break_lock(lock)
    assert break_lock(lock, force="run-1") == holder


def test_stale_lock_breaks_without_force(lock: RunLock) -> None:
    stale = _stale("run-old")
    lock.acquire(stale)
    assert break_lock(lock) == stale
    assert lock.holder() is None
    assert break_lock(lock) is None  # free: nothing to break


def test_reused_pid_makes_a_lock_stale(lock: RunLock) -> None:
    me = _owner("run-1")
    if me.pid_start is None:
        pytest.fail("needs /proc to read process start times")  # pragma: no cover
    lock.acquire(replace(me, pid_start=me.pid_start + 1))
    with pytest.raises(LockHeldError, match="stale"):
        lock.acquire(_owner("run-2"))


def test_concurrent_takers_get_exactly_one_lock(lock: RunLock) -> None:
    winners: list[str] = []
    errors: list[Exception] = []

    def take(run_id: str) -> None:
        try:
            lock.acquire(_owner(run_id))
            winners.append(run_id)
        except LockHeldError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=take, args=(f"r{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1 and len(errors) == 7
    holder = lock.holder()
    assert holder is not None and holder.run_id == winners[0]


TAKE_LOCAL = """
import sys
from pathlib import Path
from runbook_engine.engine.locks import LocalLock, LockHolder
from runbook_engine.errors import LockHeldError
try:
    LocalLock(Path(sys.argv[1]), "deploy").acquire(
        LockHolder.current(run_id=sys.argv[2], operator="op"))
    print("won")
except LockHeldError:
    print("held")
"""


def test_processes_racing_for_a_local_lock_get_exactly_one(tmp_path: Path) -> None:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", TAKE_LOCAL, str(tmp_path), f"r{i}"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    outcomes = [child.communicate(timeout=60)[0].strip() for child in children]
    assert sorted(outcomes) == ["held"] * 7 + ["won"]
    # The winner has exited, so its lock is now reported as stale.
    with pytest.raises(LockHeldError, match="stale"):
        LocalLock(tmp_path, "deploy").acquire(_owner("late"))


def test_local_lock_file_is_private_json(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        LocalLock(tmp_path / "state", "deploy").acquire(_owner("run-1"))
    finally:
        os.umask(old)
    path = tmp_path / "state" / "locks" / "deploy.lock"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    record = json.loads(path.read_text())
    assert {"run_id", "operator", "host", "pid", "since"} <= set(record)
    assert sorted(p.name for p in path.parent.iterdir()) == ["deploy.lock"]


def test_unreadable_local_lock_needs_force_unknown(tmp_path: Path) -> None:
    lock = LocalLock(tmp_path, "deploy")
    lock.acquire(_owner("run-1"))
    (tmp_path / "locks" / "deploy.lock").write_text("{garbage")
    with pytest.raises(LockHeldError, match="unknown holder"):
        lock.acquire(_owner("run-2"))
    with pytest.raises(LockHeldError, match="--force unknown"):
        break_lock(lock)
    assert break_lock(lock, force="unknown") is not None
    assert lock.holder() is None


def test_symlinked_lock_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "locks").mkdir(mode=0o700)
    target = tmp_path / "elsewhere"
    target.write_text("{}")
    (tmp_path / "locks" / "deploy.lock").symlink_to(target)
    with pytest.raises(StateDirError, match="symlink"):
        LocalLock(tmp_path, "deploy").acquire(_owner("run-1"))


@pytest.mark.parametrize("name", ["", "../etc", "a/b", ".hidden", "x" * 200, "a b"])
def test_lock_names_that_are_not_plain_file_names_are_refused(
    tmp_path: Path, name: str
) -> None:
    with pytest.raises(InputError, match="invalid lock name"):
        LocalLock(tmp_path, name)


def test_remote_lock_is_a_directory_with_owner_json(tmp_path: Path) -> None:
    lock_dir = tmp_path / "locks"
    RemoteLock(LocalTransport("web1"), "deploy", lock_dir=str(lock_dir)).acquire(
        _owner("run-1")
    )
    owner = lock_dir / "deploy.lock" / "owner.json"
    assert json.loads(owner.read_text())["run_id"] == "run-1"
    assert sorted(p.name for p in owner.parent.iterdir()) == ["owner.json"]


def test_remote_lock_messages_name_the_host_and_unlock_flags(tmp_path: Path) -> None:
    lock = RemoteLock(
        LocalTransport("web1"),
        "deploy",
        lock_dir=str(tmp_path),
        inventory="inv.yaml",
    )
    lock.acquire(_stale("run-old"))
    with pytest.raises(LockHeldError) as caught:
        lock.acquire(_owner("run-2"))
    assert "on host web1" in str(caught.value)
    assert "runbook unlock deploy -i inv.yaml --host web1" in str(caught.value)


def test_remote_lock_dir_under_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    lock = RemoteLock(LocalTransport("web1"), "deploy", lock_dir="~/my locks")
    lock.acquire(_owner("run-1"))
    assert (tmp_path / "my locks" / "deploy.lock" / "owner.json").is_file()


def test_remote_lock_dir_that_cannot_be_made_is_a_no_go(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    lock = RemoteLock(
        LocalTransport("web1"), "deploy", lock_dir=str(tmp_path / "file" / "locks")
    )
    with pytest.raises(NoGoError, match="on host web1: cannot take it") as caught:
        lock.acquire(_owner("run-1"))
    assert not isinstance(caught.value, LockHeldError)
    assert caught.value.exit_code == ExitCode.NO_GO


def test_remote_lock_without_owner_record_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "deploy.lock").mkdir()  # a crash between mkdir and owner.json
    lock = RemoteLock(LocalTransport("web1"), "deploy", lock_dir=str(tmp_path))
    with pytest.raises(LockHeldError, match="unknown holder"):
        lock.acquire(_owner("run-1"))
    assert break_lock(lock, force="unknown") is not None
    lock.acquire(_owner("run-1"))
