"""Noticing silent SSH connections: one thread watches every connection of a pool.

Each connection sends its own keepalive probe (a ``keepalive@openssh.com`` request
that the server must answer) after ``keepalive`` seconds without sending anything,
from paramiko's reader thread (``ssh_connect``), and notes when bytes last arrived.
This monitor only reads those notes: a connection that has heard nothing for three
intervals, whose oldest unanswered probe went out two intervals ago or more, and
that has no unread bytes waiting is declared lost, which closes it, so a command
waiting on it fails with ``ConnectionLostError`` instead of hanging. The last two
conditions keep a starved controller (a thousand threads on two busy cores) from
blaming the host: when our own reader thread is late, the probe is late or the
answer sits unread, and neither is the peer's silence. The monitor never sends, so
a dead connection whose socket buffer is full cannot block it, and the cost is one
thread per pool instead of a watchdog thread (plus a probe thread per interval) per
host.

Standard library only: paramiko stays in the ``ssh*`` modules.
"""

from __future__ import annotations

import abc
import threading
import time
from dataclasses import dataclass

MISSED_INTERVALS = 3  # silence longer than this many keepalive intervals = lost
_MIN_SLEEP = 0.02
_MAX_SLEEP = 1.0


class Watched(abc.ABC):
    """What the monitor needs from a connection (``ssh_connect.SSHConnection``)."""

    @abc.abstractmethod
    def last_heard(self) -> float:
        """``time.monotonic()`` when the last bytes arrived from the server."""

    @abc.abstractmethod
    def unanswered_since(self) -> float | None:
        """``time.monotonic()`` when the oldest probe not answered yet was sent."""

    @abc.abstractmethod
    def input_pending(self) -> bool:
        """Bytes have arrived that nobody has read yet."""

    @abc.abstractmethod
    def is_open(self) -> bool: ...

    @abc.abstractmethod
    def declare_lost(self, reason: str) -> None:
        """Close the connection, remembering ``reason`` as the cause."""


@dataclass(slots=True)
class _Entry:
    target: Watched
    interval: float


class KeepaliveMonitor:
    """Thread-safe. The thread starts with the first ``watch`` and ends with
    ``close`` (it is a daemon: an unclosed monitor never keeps a process alive)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, _Entry] = {}
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def watch(self, target: Watched, interval: float) -> None:
        """Watch ``target`` (again) with its keepalive ``interval`` (> 0)."""
        with self._lock:
            if self._stopped:
                return
            self._entries[id(target)] = _Entry(target, interval)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="ssh-keepalive", daemon=True
                )
                self._thread.start()
        if interval < _MAX_SLEEP:  # else the next round, within a second, is soon
            self._wake.set()  # enough (waking per watch is O(n^2) for a fleet)

    def unwatch(self, target: Watched) -> None:
        with self._lock:
            self._entries.pop(id(target), None)

    def close(self) -> None:
        with self._lock:
            self._stopped = True
            self._entries.clear()
            thread = self._thread
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopped:
                    return
                entries = list(self._entries.values())
            sleep = _MAX_SLEEP
            for entry in entries:
                sleep = min(sleep, self._check(entry))
            self._wake.wait(max(sleep, _MIN_SLEEP))
            self._wake.clear()

    def _check(self, entry: _Entry) -> float:
        """Judge one connection; returns how long it may wait for another look."""
        target, limit = entry.target, MISSED_INTERVALS * entry.interval
        if not target.is_open():
            self.unwatch(target)
            return _MAX_SLEEP
        now = time.monotonic()
        silent = now - target.last_heard()
        if silent < limit:
            return limit - silent
        probed = target.unanswered_since()
        if probed is None or now - probed < limit - entry.interval:
            return entry.interval / 4  # our probe is late: we are slow, not them
        if target.input_pending():  # the answer is there, our reader is just late
            return entry.interval / 4
        self.unwatch(target)
        target.declare_lost(
            f"no answer to SSH keepalives for {limit:g}s (network partition or the "
            "host hangs)"
        )
        return _MIN_SLEEP
