"""File transfer over SSH against real sshd, with SFTP and without it (exec fallback).

The rules every transport shares (changed detection, modes, atomic replace, reads,
removes) are in ``tests/transports/test_contract.py``; here is what only SSH has:
relative paths against the remote ``$HOME``, choosing SFTP or exec once per
connection, contents never on a command line, and no temp file left when a write
fails or the connection drops mid-write.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import uuid
from typing import TYPE_CHECKING

import pytest

from runbook_engine.errors import ConnectionLostError
from runbook_engine.transports.ssh_files import parse_ls_mode
from tests.support.sshd import processes_matching, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.ssh

REFUSED = "subsystem request for sftp by user"


@pytest.fixture(params=["sftp", "exec"])
def files_host(request, servers, hardened, tmp_path, connect):
    """(transport, server) for a host with SFTP, then one without it."""
    server = servers[1] if request.param == "sftp" else hardened
    known = tmp_path / "known_hosts"
    known.write_text(server.known_hosts_line() + "\n")
    return connect(server, known), server


def _temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".runbook-" in p.name)


def test_relative_paths_are_relative_to_the_remote_home(files_host):
    transport, server = files_host
    result = transport.write_file("relative.txt", b"x", None)
    assert result.changed
    assert (server.home / "relative.txt").read_bytes() == b"x"
    assert transport.read_file("relative.txt").data == b"x"
    assert transport.remove_file("relative.txt") is True
    assert not (server.home / "relative.txt").exists()


def test_a_server_without_sftp_is_asked_once_per_connection(
    hardened, tmp_path, connect
):
    known = tmp_path / "known_hosts"
    known.write_text(hardened.known_hosts_line() + "\n")
    asked_before = hardened.log().count(REFUSED)
    transport = connect(hardened, known)
    methods = {
        transport.write_file(str(hardened.home / f"once-{i}"), b"data", 0o600).method
        for i in range(3)
    }
    assert transport.read_file(str(hardened.home / "once-0")).data == b"data"
    assert methods == {"exec"}
    assert hardened.log().count(REFUSED) == asked_before + 1
    transport.close()  # a new connection asks again: the server may have changed
    transport.connect()
    assert transport.write_file(str(hardened.home / "once-0"), b"new", None).changed
    assert hardened.log().count(REFUSED) == asked_before + 2


def test_a_server_with_sftp_uses_it(servers, trusted, connect):
    transport = connect(servers[1], trusted)
    result = transport.write_file(str(servers[1].home / "with-sftp"), b"x", None)
    assert result.method == "sftp"
    assert REFUSED not in servers[1].log()


def test_exec_transfer_never_puts_contents_on_a_command_line(
    hardened, tmp_path, connect
):
    known = tmp_path / "known_hosts"
    known.write_text(hardened.known_hosts_line() + "\n")
    transport = connect(hardened, known)
    marker = f"secret-{uuid.uuid4().hex}"
    data = (marker.encode() + b"\n") * 400_000  # ~17 MB: long enough to watch
    target = hardened.home / "watched.bin"
    seen: dict[str, list[int]] = {"marker": [], "shell": []}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen["marker"] += processes_matching(marker)
            seen["shell"] += processes_matching("/bin/sh -s")

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert transport.write_file(str(target), data, 0o600).method == "exec"
    finally:
        done.set()
        watcher.join()
    assert seen["shell"], "the remote shell was never seen, so this proves nothing"
    assert seen["marker"] == []
    assert target.read_bytes() == data


@contextlib.contextmanager
def _unwritable(directory: Path) -> Iterator[None]:
    """A directory nobody can create files in, root included (immutable)."""
    directory.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(directory)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
    else:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)


def test_a_write_into_an_unwritable_directory_fails_and_leaves_nothing(
    files_host, tmp_path
):
    transport, server = files_host
    locked = server.home / f"locked-{uuid.uuid4().hex[:8]}"
    with _unwritable(locked), pytest.raises(PermissionError) as caught:
        transport.write_file(str(locked / "app.conf"), b"x" * 100_000, 0o644)
    assert f"{locked}/app.conf" in str(caught.value)
    assert list(locked.iterdir()) == []
    assert transport.write_file(str(server.home / "after-refusal"), b"ok", None)


def test_connection_lost_mid_write_leaves_no_temp_file(
    server_factory, tmp_path, connect
):
    server = server_factory("dropped", sftp=False)
    known = tmp_path / "known_hosts"
    known.write_text(server.known_hosts_line() + "\n")
    transport = connect(server, known)
    target = server.home / "big.bin"
    target.write_bytes(b"old")

    def drop_when_half_there() -> None:  # sshd is local: watch the temp file grow
        wait_until(
            lambda: any(p.stat().st_size > 0 for p in server.home.glob(".big.bin*")),
            timeout=10,
        )
        transport.connection.declare_lost("test: the network went away")

    dropper = threading.Thread(target=drop_when_half_there)
    dropper.start()
    with pytest.raises(ConnectionLostError, match="the network went away"):
        transport.write_file(str(target), b"n" * 50_000_000, None)
    dropper.join()
    assert wait_until(lambda: _temps(server.home) == [], timeout=10)
    assert target.read_bytes() == b"old"


@pytest.mark.parametrize(
    ("field", "mode"),
    [
        ("-rw-r--r--", 0o644),
        ("-rw-r-----.", 0o640),  # SELinux context marker
        ("-rwsr-xr-x+", 0o4755),  # ACL marker
        ("-rwxr-sr-T", 0o3754),
        ("drwxrwxrwt", 0o1777),
        ("-rwSr-Sr-t", 0o7645),
    ],
)
def test_ls_mode_fields_read_as_permission_bits(field, mode):
    assert parse_ls_mode(field) == mode
