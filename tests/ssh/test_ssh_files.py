"""write_file over SFTP against real sshd: atomic replace, modes, ``changed``."""

from __future__ import annotations

import threading

import pytest

pytestmark = pytest.mark.ssh


def test_write_reports_changed_only_when_content_or_mode_differ(
    servers, trusted, connect
):
    server = servers[0]
    transport = connect(server, trusted)
    target = server.home / "app.conf"
    target.unlink(missing_ok=True)
    assert transport.write_file(str(target), b"port = 8080\n", 0o640) is True
    assert target.read_bytes() == b"port = 8080\n"
    assert target.stat().st_mode & 0o7777 == 0o640
    assert transport.write_file(str(target), b"port = 8080\n", 0o640) is False
    assert transport.write_file(str(target), b"port = 8080\n", None) is False
    assert transport.write_file(str(target), b"port = 8080\n", 0o600) is True
    assert target.stat().st_mode & 0o7777 == 0o600
    assert transport.write_file(str(target), b"port = 9090\n", None) is True
    assert target.read_bytes() == b"port = 9090\n"
    assert target.stat().st_mode & 0o7777 == 0o600  # kept when no mode is given
    assert sorted(p.name for p in server.home.glob(".app.conf*")) == []


def test_relative_paths_are_relative_to_the_remote_home(servers, trusted, connect):
    server = servers[1]
    transport = connect(server, trusted)
    assert transport.write_file("relative.txt", b"x", None) is True
    assert (server.home / "relative.txt").read_bytes() == b"x"


def test_readers_never_see_a_half_written_file(servers, trusted, connect):
    server = servers[2]
    transport = connect(server, trusted)
    target = server.home / "big.bin"
    old, new = b"a" * 4_000_000, b"b" * 4_000_000
    transport.write_file(str(target), old, 0o644)
    seen: set[bytes] = set()
    done = threading.Event()

    def read_constantly() -> None:  # sshd is on this machine: read the real file
        while not done.is_set():
            data = target.read_bytes()
            seen.add(data[:1] + data[-1:] + len(data).to_bytes(4, "big"))

    reader = threading.Thread(target=read_constantly)
    reader.start()
    try:
        assert transport.write_file(str(target), new, 0o644) is True
    finally:
        done.set()
        reader.join()
    whole = {b"aa" + len(old).to_bytes(4, "big"), b"bb" + len(new).to_bytes(4, "big")}
    assert seen <= whole
    assert target.read_bytes() == new


def test_missing_directory_is_an_os_error_naming_the_path(servers, trusted, connect):
    transport = connect(servers[0], trusted)
    with pytest.raises(FileNotFoundError, match="/nonexistent/dir/file"):
        transport.write_file("/nonexistent/dir/file", b"x", None)
    assert transport.write_file(str(servers[0].home / "after-error"), b"ok", None)
