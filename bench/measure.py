"""Time one command as a whole process and record its peak memory.

Wall time is ``perf_counter`` around spawn-to-reap. Peak RSS comes two ways: the
exact peak of the largest single process in the tree (``os.wait4``'s ``ru_maxrss``,
which the kernel folds up from every reaped descendant), and the peak of the summed
RSS of the live tree, sampled from ``/proc`` (every 20 ms at first, backing off to
250 ms so long runs of forking peers do not pay for the sampling; shared pages count
once per process, so forking peers look bigger than they are). Linux only. Every
command runs in its own session; what is left of that session is killed at exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from typing import IO, TYPE_CHECKING

from bench.model import Command, Sample

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

_MIB = 1024 * 1024
_ERROR_WIDTH = 160
_PAGE = os.sysconf("SC_PAGE_SIZE")
# A user's Python writes .pyc files; a sandbox that forbids it would make every
# run of a not-yet-compiled package (runbook, editable) recompile its sources.
_BASE_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
_FIRST_POLL_S = 0.02
_LAST_POLL_S = 0.25


class _TreeRSSPoller(threading.Thread):
    """Samples the summed RSS of ``pid`` and its descendants until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self._pid = pid
        self._stop_event = threading.Event()
        self.peak_bytes = 0

    def run(self) -> None:
        interval = _FIRST_POLL_S
        while not self._stop_event.is_set():
            self.peak_bytes = max(self.peak_bytes, tree_rss_bytes(self._pid))
            self._stop_event.wait(interval)
            interval = min(interval * 1.25, _LAST_POLL_S)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def tree_rss_bytes(pid: int) -> int:
    """Summed RSS of ``pid`` and its live descendants, read from ``/proc``."""
    children = _children_map()
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += _rss_bytes(current)
        todo.extend(children.get(current, ()))
    return total


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(b")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def run_measured(
    command: Command, run_dir: Path, *, timeout_s: float = 900.0
) -> Sample:
    """Run ``command`` once in ``run_dir`` and return its figures (whatever its rc)."""
    stdout_path, stderr_path = run_dir / "stdout", run_dir / "stderr"
    with (
        open(stderr_path, "wb") as stderr,
        _stdout_target(command, stdout_path) as stdout,
    ):
        wall, status, maxrss_kib, tree_peak = _spawn_and_wait(
            command, stdout, stderr, timeout_s
        )
    rc = os.waitstatus_to_exitcode(status)
    error = None if rc == 0 else _first_error_line(stderr_path, stdout_path, rc)
    extra = _parse_extra(stdout_path) if command.parse_json and rc == 0 else {}
    if command.collect is not None:
        extra = {**extra, **command.collect(run_dir)}
    return Sample(
        wall_s=wall,
        rss_tree_mib=max(tree_peak, maxrss_kib * 1024) / _MIB,
        rss_proc_mib=maxrss_kib / 1024,
        rc=rc,
        error=error,
        extra=extra,
    )


@contextlib.contextmanager
def _stdout_target(command: Command, path: Path) -> Iterator[IO[bytes] | int]:
    if not command.capture_stdout:
        path.write_bytes(b"")
        yield subprocess.DEVNULL
        return
    with open(path, "wb") as handle:
        yield handle


def _spawn_and_wait(
    command: Command,
    stdout: IO[bytes] | int,
    stderr: IO[bytes],
    timeout_s: float,
) -> tuple[float, int, int, int]:
    env = {**_BASE_ENV, **command.env}
    start = time.perf_counter()
    process = subprocess.Popen(
        command.argv,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        env=env,
        cwd=command.cwd,
        start_new_session=True,
    )
    poller = _TreeRSSPoller(process.pid)
    poller.start()
    watchdog = threading.Timer(timeout_s, _kill_group, (process.pid,))
    watchdog.start()
    try:
        _pid, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        _kill_group(process.pid)
        process.wait()
        raise
    finally:
        watchdog.cancel()
        poller.stop()
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    _kill_group(process.pid)  # stragglers left in the command's session
    return wall, status, int(usage.ru_maxrss), poller.peak_bytes


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _first_error_line(stderr_path: Path, stdout_path: Path, rc: int) -> str:
    lines = _nonblank_lines(stderr_path) or _nonblank_lines(stdout_path)
    if not lines:
        return f"exit {rc}, no output"
    line = lines[-1] if lines[0].startswith("Traceback") else lines[0]
    return f"{line.strip()[:_ERROR_WIDTH]} (exit {rc})"


def _nonblank_lines(path: Path) -> list[str]:
    try:
        with open(path, "rb") as handle:
            head = handle.read(256 * 1024)
    except OSError:
        return []
    return [line for line in head.decode(errors="replace").splitlines() if line.strip()]


def _parse_extra(stdout_path: Path) -> dict[str, float]:
    lines = _nonblank_lines(stdout_path)
    if not lines:
        return {}
    try:
        data = json.loads(lines[-1])
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}
