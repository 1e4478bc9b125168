"""Run locks: one exclusive lock per name, on the controller and on target hosts.

Owns how a lock is taken atomically, what it records (run id, operator, controller
hostname, pid, time), how a holder is described, when it is *stale* (it ran on this
controller and its process is gone), and the rules for breaking one. A lock is never
broken automatically: ``break_lock`` is for ``runbook unlock``, which audits it.

``LocalLock`` is a file ``<state_dir>/locks/<name>.lock``. ``RemoteLock`` is a
directory ``<lock_dir>/<name>.lock`` holding ``owner.json`` on a host, made only
through ``Transport.exec``, so it works over SSH and locally alike. The database
backend's controller lock (``pglock.PostgresLock``) is a ``RunLock`` too; it frees
itself when its holder dies, so it refuses every break (``refuse_break``).
"""

from __future__ import annotations

import abc
import contextlib
import enum
import fcntl
import json
import os
import re
import shlex
import socket
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..errors import InputError, LockHeldError, NoGoError
from ..statedir import ensure_state_dir, open_private_file
from ..transports.base import ExecRequest, Stream, Transport

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

LOCKS_DIR = "locks"
DEFAULT_REMOTE_LOCK_DIR = "~/.local/state/runbook/locks"
UNKNOWN = "unknown"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_REMOTE_TIMEOUT = 30.0
_HELD = 3  # exit status of our remote scripts when the lock is held by someone
_MAX_OUTPUT = 64 * 1024


class Liveness(enum.StrEnum):
    ALIVE = "alive"  # ran on this controller and its process still runs
    STALE = "stale"  # ran on this controller and its process is gone
    UNKNOWN = "unknown"  # another controller, or unreadable: assumed alive


@dataclass(frozen=True, slots=True, kw_only=True)
class LockHolder:
    """Who holds a lock. ``host`` is the holder's *controller*; ``since`` is UTC ISO
    8601; ``pid_start`` (Linux) tells a reused pid from the holder's own."""

    run_id: str
    operator: str
    host: str
    pid: int
    since: str
    pid_start: int | None = None

    @classmethod
    def current(cls, *, run_id: str, operator: str) -> LockHolder:
        """This process, now."""
        pid = os.getpid()
        return cls(
            run_id=run_id,
            operator=operator,
            host=socket.gethostname(),
            pid=pid,
            since=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            pid_start=_process_start(pid),
        )

    @classmethod
    def parse(cls, text: str | bytes) -> LockHolder:
        """The holder recorded in a lock; an unreadable record gives a holder whose
        fields are all ``unknown`` (it is then assumed alive)."""
        try:
            data = json.loads(text)
            return cls(
                run_id=str(data["run_id"]),
                operator=str(data["operator"]),
                host=str(data["host"]),
                pid=int(data["pid"]),
                since=str(data["since"]),
                pid_start=_optional_int(data.get("pid_start")),
            )
        except (ValueError, TypeError, KeyError, RecursionError):
            return cls(
                run_id=UNKNOWN, operator=UNKNOWN, host=UNKNOWN, pid=0, since=UNKNOWN
            )

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    def liveness(self) -> Liveness:
        if self.host != socket.gethostname() or self.pid <= 0:
            return Liveness.UNKNOWN
        if not _pid_alive(self.pid):
            return Liveness.STALE
        started = _process_start(self.pid)
        if self.pid_start is not None and started not in (None, self.pid_start):
            return Liveness.STALE  # the pid was reused by another process
        return Liveness.ALIVE

    def __str__(self) -> str:
        if self.run_id == UNKNOWN:
            return (
                "an unknown holder (the lock's owner record is missing or unreadable)"
            )
        return (
            f"{self.operator} (run {self.run_id}, host {self.host}, pid {self.pid}) "
            f"since {self.since}"
        )


class RunLock(abc.ABC):
    """One named lock in one place. Subclasses provide the three primitives; taking,
    releasing and breaking are decided here, once."""

    name: str
    where: str  # "this controller" or "host web1", for messages

    @abc.abstractmethod
    def holder(self) -> LockHolder | None:
        """The current holder, or None when the lock is free."""

    @abc.abstractmethod
    def unlock_command(self) -> str:
        """The exact ``runbook unlock`` command line for this lock."""

    @abc.abstractmethod
    def _create(self, owner: LockHolder) -> LockHolder | None:
        """Take the lock atomically; None on success, else the current holder."""

    @abc.abstractmethod
    def _remove(self, run_id: str) -> bool:
        """Remove the lock only if ``run_id`` holds it; True when removed."""

    def acquire(self, owner: LockHolder) -> None:
        """Take the lock or raise ``LockHeldError`` naming the holder."""
        holder = self._create(owner)
        if holder is not None:
            raise LockHeldError(self._held_message(holder))

    def release(self, owner: LockHolder) -> bool:
        """Release the lock if ``owner``'s run still holds it (someone may have broken
        and retaken it). Returns True when it was released."""
        return self._remove(owner.run_id)

    def refuse_break(self, holder: LockHolder, force: str | None) -> str | None:
        """Why ``runbook unlock`` must not break this lock held by ``holder``, or
        None. A stale lock breaks as is; a live one needs ``--force RUN_ID``."""
        if holder.liveness() is not Liveness.STALE and force != holder.run_id:
            return _refusal(self, holder, force)
        return None

    def _held_message(self, holder: LockHolder) -> str:
        message = f"lock {self.name!r} on {self.where} is held by {holder}"
        if holder.liveness() is Liveness.STALE:
            message += (
                f"; its process (pid {holder.pid}) is gone from this controller, so "
                "the lock is stale. Locks are never broken automatically: if that run "
                f"is over, break it with: {self.unlock_command()}"
            )
        return message


def break_lock(lock: RunLock, *, force: str | None = None) -> LockHolder | None:
    """Break ``lock`` for ``runbook unlock`` and return the holder it had (None when
    it was free), so the caller can audit it. A stale lock breaks as is; a holder that
    is alive (or on another controller, or unreadable, so assumed alive) needs
    ``force`` equal to its run id. Raises ``LockHeldError`` otherwise."""
    holder = lock.holder()
    if holder is None:
        return None
    refusal = lock.refuse_break(holder, force)
    if refusal is not None:
        raise LockHeldError(refusal)
    if not lock._remove(holder.run_id):
        raise LockHeldError(
            f"lock {lock.name!r} on {lock.where} changed hands while breaking it; "
            "look again"
        )
    return holder


def _refusal(lock: RunLock, holder: LockHolder, force: str | None) -> str:
    state = (
        "its process still runs on this controller"
        if holder.liveness() is Liveness.ALIVE
        else "it may still be running (it is not on this controller)"
    )
    message = f"lock {lock.name!r} on {lock.where} is held by {holder}; {state}"
    if force is not None:
        message += f"; --force {force} does not match the holder's run id"
    command = f"{lock.unlock_command()} --force {shlex.quote(holder.run_id)}"
    return f"{message}. To break it anyway, name its run id: {command}"


class LocalLock(RunLock):
    """``<state_dir>/locks/<name>.lock``, a 0600 JSON file published atomically."""

    def __init__(self, state_dir: Path, name: str):
        self.name = check_lock_name(name)
        self.where = "this controller"
        self._state_dir = state_dir
        self._path = state_dir / LOCKS_DIR / f"{name}.lock"

    def holder(self) -> LockHolder | None:
        with self._guard():
            return self._read()

    def unlock_command(self) -> str:
        return f"runbook unlock {shlex.quote(self.name)}"

    def _create(self, owner: LockHolder) -> LockHolder | None:
        with self._guard():
            holder = self._read()
            if holder is not None:
                return holder
            self._publish(owner)
            return None

    def _remove(self, run_id: str) -> bool:
        with self._guard():
            holder = self._read()
            if holder is None or holder.run_id != run_id:
                return False
            self._path.unlink()
            return True

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Serialise lock operations on this controller (flock on the locks dir)."""
        ensure_state_dir(self._state_dir)
        directory = ensure_state_dir(self._path.parent)
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self) -> LockHolder | None:
        try:
            self._path.lstat()
        except FileNotFoundError:
            return None
        fd = open_private_file(self._path, os.O_RDONLY)
        with open(fd, "rb") as stream:
            return LockHolder.parse(stream.read(_MAX_OUTPUT))

    def _publish(self, owner: LockHolder) -> None:
        # Written to a temp name, then linked: the lock never exists half-written.
        temp = self._path.with_name(f".{self._path.name}.{os.getpid()}.tmp")
        temp.unlink(missing_ok=True)
        fd = open_private_file(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            with open(fd, "wb") as stream:
                stream.write(owner.to_json().encode("utf-8") + b"\n")
                stream.flush()
                os.fsync(stream.fileno())
            os.link(temp, self._path)
        finally:
            temp.unlink(missing_ok=True)


class RemoteLock(RunLock):
    """``<lock_dir>/<name>.lock/owner.json`` on a host, made with an atomic ``mkdir``
    through ``transport.exec``. ``lock_dir`` may start with ``~/`` (the remote
    user's home). Connection failures propagate as ``TransportError``; a lock dir that
    cannot be made is ``NoGoError``."""

    def __init__(
        self,
        transport: Transport,
        name: str,
        *,
        lock_dir: str = DEFAULT_REMOTE_LOCK_DIR,
        inventory: str | None = None,
    ):
        self.name = check_lock_name(name)
        self.where = f"host {transport.name}"
        self._transport = transport
        self._inventory = inventory
        self._vars = (
            f"dir={_shell_path(lock_dir)}\n"
            f'lock="$dir"/{shlex.quote(name + ".lock")}\n'
            'owner="$lock/owner.json"\n'
        )

    def holder(self) -> LockHolder | None:
        script = '[ -d "$lock" ] || exit 0\ncat -- "$owner" 2>/dev/null\nexit 3\n'
        rc, output = self._run(script, "read")
        return LockHolder.parse(output) if rc == _HELD else None

    def unlock_command(self) -> str:
        inventory = shlex.quote(self._inventory) if self._inventory else "INVENTORY"
        host = shlex.quote(self._transport.name)
        return f"runbook unlock {shlex.quote(self.name)} -i {inventory} --host {host}"

    def _create(self, owner: LockHolder) -> LockHolder | None:
        script = (
            f"record={shlex.quote(owner.to_json())}\n"
            "umask 077\n"
            'mkdir -p -- "$dir" || exit 10\n'
            'if mkdir -- "$lock" 2>/dev/null; then\n'
            '  printf "%s\\n" "$record" > "$owner.tmp" &&'
            ' mv -f -- "$owner.tmp" "$owner" && exit 0\n'
            '  rm -f -- "$owner.tmp"; rmdir -- "$lock"; exit 10\n'
            "fi\n"
            '[ -d "$lock" ] && [ ! -L "$lock" ] ||'
            ' { echo "cannot create $lock" >&2; exit 10; }\n'
            'cat -- "$owner" 2>/dev/null\n'
            "exit 3\n"
        )
        rc, output = self._run(script, "take")
        return LockHolder.parse(output) if rc == _HELD else None

    def _remove(self, run_id: str) -> bool:
        rc, output = self._run(
            '[ -d "$lock" ] || exit 0\ncat -- "$owner" 2>/dev/null\nexit 3\n', "read"
        )
        if rc != _HELD or LockHolder.parse(output).run_id != run_id:
            return False
        seen = shlex.quote(output.decode("utf-8", "replace").rstrip("\n"))
        script = (
            f'[ "$(cat -- "$owner" 2>/dev/null)" = {seen} ] || exit 3\n'
            'rm -f -- "$owner" && rmdir -- "$lock" || exit 10\n'
        )
        rc, _ = self._run(script, "remove")
        return rc == 0

    def _run(self, script: str, action: str) -> tuple[int, bytes]:
        sink = _Collect()
        request = ExecRequest(command=self._vars + script, timeout=_REMOTE_TIMEOUT)
        result = self._transport.exec(request, sink, threading.Event())
        if result.rc not in (0, _HELD):
            cause = sink.stderr.decode("utf-8", "replace").strip() or (
                "timed out" if result.timed_out else f"exit status {result.rc}"
            )
            raise NoGoError(
                f"lock {self.name!r} on {self.where}: cannot {action} it: {cause}"
            )
        assert result.rc is not None
        return result.rc, sink.stdout


def check_lock_name(name: str) -> str:
    """Lock names become file names: letters, digits, ``.``, ``_``, ``-``."""
    if not _NAME.match(name):
        raise InputError(
            f"invalid lock name {name!r}: use letters, digits, '.', '_' and '-' "
            "(up to 128, not starting with '.' or '-')"
        )
    return name


class _Collect:
    """An ``OutputSink`` keeping the first 64 KiB of each stream."""

    def __init__(self) -> None:
        self.stdout = b""
        self.stderr = b""

    def write(self, stream: Stream, data: bytes) -> None:
        if stream is Stream.STDOUT:
            self.stdout = (self.stdout + data)[:_MAX_OUTPUT]
        else:
            self.stderr = (self.stderr + data)[:_MAX_OUTPUT]


def _shell_path(path: str) -> str:
    """Quote ``path`` for sh, letting a leading ``~/`` mean the remote home."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    fields = _proc_stat(pid)
    return fields is None or fields[0] != b"Z"  # a zombie has finished


def _process_start(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), else None."""
    fields = _proc_stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def _proc_stat(pid: int) -> list[bytes] | None:
    """Fields of ``/proc/PID/stat`` from the state on (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            return stream.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _optional_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
