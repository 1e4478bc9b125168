"""The transport contract: one suite, run against every transport (``local`` and
``ssh`` to a real sshd; file rules also over ``exec`` channels to a sshd without
SFTP). A behaviour that differs between transports is a bug in one of them.

The sshd run on this machine, so the tests look at the "remote" processes and
files directly. Nothing here is timed: "promptly" and "streamed" are shown by what
happens (a process gone, a command that can only finish once its first line was
seen), never by a stopwatch.
"""

from __future__ import annotations

import errno
import os
import shlex
import stat
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from runbook_engine.transports.base import ExecRequest, ExecResult, Stream
from tests.support.clients import Capture
from tests.support.sshd import processes_matching, wait_until

if TYPE_CHECKING:
    from runbook_engine.transports.base import OutputSink, Transport

pytestmark = pytest.mark.ssh


def run(
    transport: Transport,
    command: str | None = None,
    *,
    sink: OutputSink | None = None,
    cancel: threading.Event | None = None,
    **fields: object,
) -> tuple[ExecResult, Capture]:
    capture = Capture()
    request = ExecRequest(command=command, **fields)  # type: ignore[arg-type]
    result = transport.exec(request, sink or capture, cancel or threading.Event())
    return result, capture


def _marker() -> str:
    """A unique sleep duration, to find a command's processes by their argv."""
    return f"{uuid.uuid4().int % 10**6 + 10**6}"


# -- commands ---------------------------------------------------------------------
def test_unicode_arguments_and_output_survive(transport):
    result, out = run(transport, argv=("printf", "%s|%s", "héllo wörld", "日本 'q'"))
    assert (result.rc, out.text()) == (0, "héllo wörld|日本 'q'")
    result, out = run(transport, "echo 'ünïcode ✓'; echo err-✗ >&2")
    assert (out.text(), out.text(Stream.STDERR)) == ("ünïcode ✓\n", "err-✗\n")


TRICKY = [
    "it's", 'say "hi"', "$HOME", "`id`", "$(id)", "a  b", "", "\\", ";&|<>",
    "*", "-n", "new\nline", "~", "#",
]  # fmt: skip


def test_argv_reaches_the_program_without_a_shell(transport):
    result, out = run(transport, argv=("printf", "[%s]", *TRICKY))
    assert result.rc == 0
    assert out.text() == "".join(f"[{arg}]" for arg in TRICKY)


def test_shell_text_is_parsed_by_sh_exactly_once(transport):
    command = shlex.join(("printf", "[%s]", *TRICKY)) + '; echo "$((6 * 7))"'
    result, out = run(transport, command)
    assert result.rc == 0
    assert out.text() == "".join(f"[{arg}]" for arg in TRICKY) + "42\n"


def test_env_values_arrive_exactly(transport):
    tricky = 'it\'s "quoted"\nsecond line $HOME `id` $(id) \\ ; && | ✓'
    result, out = run(
        transport,
        'printf %s "$TRICKY"; printf "|%s" "$EMPTY"',
        env={"TRICKY": tricky, "EMPTY": ""},
    )
    assert (result.rc, out.text()) == (0, tricky + "|")


def test_env_values_never_appear_in_a_process_listing(transport):
    secret, marker = f"s3cret-{uuid.uuid4().hex}", _marker()
    seen: dict[str, list[int]] = {}

    def watch() -> None:
        wait_until(lambda: bool(processes_matching(f"sleep {marker}")), timeout=10)
        seen["sleep"] = processes_matching(f"sleep {marker}")
        seen["secret"] = processes_matching(secret)
        for pid in seen["sleep"]:
            os.kill(pid, 15)

    watcher = threading.Thread(target=watch)
    watcher.start()
    run(transport, f"sleep {marker}", env={"TOKEN": secret}, timeout=20)
    watcher.join()
    assert seen["sleep"], "the process was never seen, so this proves nothing"
    assert seen["secret"] == []


def test_cwd_is_where_the_command_runs_and_a_missing_one_runs_nothing(
    transport, tmp_path
):
    where = tmp_path / "dir with space ✓"
    where.mkdir()
    result, out = run(transport, "pwd", cwd=str(where))
    assert (result.rc, out.text()) == (0, f"{where}\n")
    try:
        result, _ = run(transport, "touch ran", cwd=str(tmp_path / "missing"))
    except FileNotFoundError:  # local: refused before anything started
        pass
    else:
        assert result.rc != 0
    assert not list(tmp_path.rglob("ran"))


@pytest.mark.parametrize("code", [0, 1, 3, 127, 255])
def test_exit_codes_are_reported(transport, code):
    result, _ = run(transport, f"exit {code}")
    assert (result.rc, result.signal, result.timed_out) == (code, None, False)


def test_the_command_gets_an_empty_stdin(transport):
    result, out = run(transport, "cat; echo rc=$?", timeout=20)
    assert not result.timed_out
    assert out.text() == "rc=0\n"


def test_a_command_killed_by_a_signal_says_which(transport):
    result, _ = run(transport, "echo before; kill -TERM $$; echo after")
    assert (result.rc, result.signal) == (None, 15)
    result, _ = run(transport, "kill -KILL $$")
    assert (result.rc, result.signal) == (None, 9)


class _Handshake:
    """A sink that answers the command's first line by creating ``go``."""

    def __init__(self, go: Path) -> None:
        self.go = go
        self.capture = Capture()

    def write(self, stream: Stream, data: bytes) -> None:
        self.capture.write(stream, data)
        if b"first" in data:
            self.go.touch()


def test_output_is_streamed_while_the_command_runs(transport, tmp_path):
    # the command can only go on once its first line reached us: buffered output
    # would make it wait for its timeout
    go = tmp_path / "go"
    sink = _Handshake(go)
    command = f"echo first; until [ -e {shlex.quote(str(go))} ]; do sleep 0.05; done"
    result, _ = run(transport, command + "; echo second", sink=sink, timeout=30)
    assert not result.timed_out and result.rc == 0
    assert sink.capture.text() == "first\nsecond\n"


def test_timeout_kills_the_whole_process_tree(transport):
    marker = _marker()
    command = f"sleep {marker} & sleep {marker}; echo done"
    result, out = run(transport, command, timeout=0.5)
    assert (result.timed_out, result.rc) == (True, None)
    assert "done" not in out.text()
    assert wait_until(lambda: not processes_matching(f"sleep {marker}"), timeout=5)
    again, out = run(transport, "echo still usable")
    assert (again.rc, out.text()) == (0, "still usable\n")


def test_timeout_kills_a_process_that_ignores_sigterm(transport):
    marker = _marker()
    result, _ = run(transport, f"trap '' TERM; sleep {marker}", timeout=0.3)
    assert result.timed_out
    assert wait_until(lambda: not processes_matching(f"sleep {marker}"), timeout=5)


def test_cancel_kills_the_whole_process_tree(transport):
    marker = _marker()
    cancel = threading.Event()

    def cancel_once_running() -> None:
        wait_until(lambda: len(processes_matching(f"sleep {marker}")) >= 2, 10)
        cancel.set()

    canceller = threading.Thread(target=cancel_once_running)
    canceller.start()
    result, _ = run(transport, f"sleep {marker} & sleep {marker}", cancel=cancel)
    canceller.join()
    assert (result.interrupted, result.rc) == (True, None)
    assert wait_until(lambda: not processes_matching(f"sleep {marker}"), timeout=5)


class _Meter:
    """Counts bytes and samples this process's RSS every 8 MB."""

    def __init__(self) -> None:
        self.total = 0
        self.peak = _rss()
        self._next = 0

    def write(self, stream: Stream, data: bytes) -> None:
        self.total += len(data)
        if self.total >= self._next:
            self.peak = max(self.peak, _rss())
            self._next += 8_000_000


def _rss() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def test_large_output_keeps_memory_flat(transport):
    size = 200_000_000  # one 200 MB line: the worst case for line handling
    meter = _Meter()
    before = meter.peak
    result, _ = run(transport, f"head -c {size} /dev/zero | tr '\\0' x", sink=meter)
    assert (result.rc, meter.total) == (0, size)
    assert meter.peak - before < 64 * 1024 * 1024


# -- files ------------------------------------------------------------------------
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".runbook-" in p.name)


def test_write_reports_changed_only_when_content_or_mode_differ(files, tmp_path):
    target = tmp_path / "app.conf"
    write = files.write_file
    assert write(str(target), b"port = 8080\n", 0o640).changed is True
    assert (target.read_bytes(), _mode(target)) == (b"port = 8080\n", 0o640)
    inode = target.stat().st_ino
    assert write(str(target), b"port = 8080\n", 0o640).changed is False
    assert write(str(target), b"port = 8080\n", None).changed is False
    assert target.stat().st_ino == inode  # not rewritten when equal
    assert write(str(target), b"port = 8080\n", 0o600).changed is True
    assert _mode(target) == 0o600
    assert write(str(target), b"port = 9090\n", None).changed is True
    assert (target.read_bytes(), _mode(target)) == (b"port = 9090\n", 0o600)
    assert write(str(tmp_path / "new"), b"x", None).changed is True
    assert _mode(tmp_path / "new") == 0o644
    assert _temps(tmp_path) == []


def test_binary_data_and_megabytes_round_trip(files, tmp_path):
    data = b"\0" + bytes(range(256)) * 20_000 + os.urandom(1_000_000) + b"\0\n\r"
    target = tmp_path / "blob.bin"
    assert files.write_file(str(target), data, 0o600).changed
    assert target.read_bytes() == data
    read = files.read_file(str(target))
    assert read is not None and (read.data, read.mode) == (data, 0o600)
    empty = tmp_path / "empty"
    assert files.write_file(str(empty), b"", None).changed
    assert files.read_file(str(empty)).data == b""


def test_read_file_of_nothing_and_of_what_is_not_a_file(files, tmp_path):
    assert files.read_file(str(tmp_path / "absent")) is None
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert files.read_file(str(tmp_path / "dangling")) is None
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        files.read_file(str(tmp_path))
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(OSError, match="not a regular file") as caught:
        files.read_file(str(tmp_path / "fifo"))
    assert caught.value.errno == errno.EINVAL


def test_remove_file_says_whether_it_removed_something(files, tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    assert files.remove_file(str(tmp_path / "file")) is True
    assert files.remove_file(str(tmp_path / "file")) is False
    assert files.remove_file(str(tmp_path / "link")) is True
    assert not (tmp_path / "link").is_symlink()
    (tmp_path / "dir").mkdir()
    with pytest.raises(IsADirectoryError):
        files.remove_file(str(tmp_path / "dir"))
    assert (tmp_path / "dir").is_dir()


def test_a_missing_directory_is_file_not_found_naming_the_path(files, tmp_path):
    target = tmp_path / "missing" / "file"
    with pytest.raises(FileNotFoundError, match=str(target)):
        files.write_file(str(target), b"x", None)
    assert files.write_file(str(tmp_path / "after-error"), b"ok", None).changed


def test_a_directory_in_the_way_is_refused_before_anything_is_sent(files, tmp_path):
    (tmp_path / "conf").mkdir()
    with pytest.raises(IsADirectoryError, match="conf"):
        files.write_file(str(tmp_path / "conf"), b"x", 0o644)
    assert list((tmp_path / "conf").iterdir()) == []
    assert _temps(tmp_path) == []


def test_readers_never_see_a_half_written_file(files, tmp_path):
    target = tmp_path / "big.bin"
    old, new = b"a" * 4_000_000, b"b" * 4_000_000
    files.write_file(str(target), old, 0o644)
    seen: set[bytes] = set()
    done = threading.Event()

    def read_constantly() -> None:
        while not done.is_set():
            data = target.read_bytes()
            seen.add(data[:1] + data[-1:] + len(data).to_bytes(4, "big"))

    reader = threading.Thread(target=read_constantly)
    reader.start()
    try:
        assert files.write_file(str(target), new, 0o644).changed
    finally:
        done.set()
        reader.join()
    whole = {b"aa" + len(old).to_bytes(4, "big"), b"bb" + len(new).to_bytes(4, "big")}
    assert seen <= whole
    assert target.read_bytes() == new


def test_the_temp_file_is_private_while_the_bytes_arrive(files, tmp_path):
    size = 50_000_000
    modes: set[int] = set()  # of the temp file while it held part of the bytes
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for path in tmp_path.glob(".secret*"):
                try:
                    info = path.stat()
                except FileNotFoundError:
                    continue
                if 0 < info.st_size < size:
                    modes.add(stat.S_IMODE(info.st_mode))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        files.write_file(str(tmp_path / "secret"), b"s" * size, 0o644)
    finally:
        done.set()
        watcher.join()
    assert modes <= {0o600}
    assert _mode(tmp_path / "secret") == 0o644
