"""Connection failures against real sshd and real sockets: each becomes one
TransportError subclass with a one-line cause in our words."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
import uuid

import pytest

from runbook_engine.errors import AuthError, ConnectError, ConnectionLostError
from runbook_engine.transports.ssh import SSHTransport
from tests.support.sshd import (
    make_client_key,
    process_tree,
    processes_matching,
    wait_until,
)

pytestmark = pytest.mark.ssh


def test_wrong_client_key_is_an_auth_error_and_not_retried(
    servers, trusted, tmp_path, connect
):
    server = servers[0]
    stranger = make_client_key(tmp_path / "stranger")
    before = server.log().count("Connection from")
    with pytest.raises(AuthError) as caught:
        connect(server, trusted, identity_file=str(stranger.path))
    assert "authentication rejected for user" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not caught.value.retryable
    assert server.log().count("Connection from") == before + 1  # one attempt only


def test_encrypted_keys_need_their_passphrase(servers, trusted, tmp_path, make_host):
    server = servers[1]
    locked = make_client_key(
        tmp_path / "locked", key_type="ecdsa", passphrase="pass phrase"
    )
    server.authorize(locked.public_line)
    host = make_host(server, trusted, identity_file=str(locked.path))
    with pytest.raises(AuthError, match="encrypted and no passphrase"):
        SSHTransport(host).connect()
    with pytest.raises(AuthError, match="wrong passphrase"):
        SSHTransport(host, passphrase="nope").connect()
    transport = SSHTransport(host, passphrase="pass phrase")
    try:
        transport.connect()
    finally:
        transport.close()


def test_rsa_keys_work(servers, trusted, tmp_path, run, make_host):
    server = servers[2]
    rsa = make_client_key(tmp_path / "rsa", key_type="rsa")
    server.authorize(rsa.public_line)
    transport = SSHTransport(make_host(server, trusted, identity_file=str(rsa.path)))
    try:
        assert run(transport, "echo ok")[1].text() == "ok\n"
    finally:
        transport.close()


def test_port_with_nothing_listening_is_a_connect_error(
    server_factory, tmp_path, connect
):
    server = server_factory("down")
    server.stop()
    with pytest.raises(ConnectError, match="connection refused") as caught:
        connect(server, tmp_path / "known_hosts")
    assert caught.value.retryable


def test_unknown_host_name_is_a_connect_error(servers, trusted, connect):
    with pytest.raises(ConnectError, match="cannot resolve host name"):
        connect(servers[0], trusted, address="no-such-host.invalid")


def test_a_server_that_never_sends_a_banner_times_out(servers, trusted, connect):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ConnectError, match=r"no SSH banner within 0\.5s"):
            connect(servers[0], trusted, port=port, connect_timeout=0.5)
        assert time.monotonic() - started < 2


def test_sshd_killed_mid_command_is_connection_lost(
    server_factory, tmp_path, connect, run
):
    server = server_factory("doomed")
    known = tmp_path / "known_hosts"
    known.write_text(server.known_hosts_line() + "\n")
    transport = connect(server, known)
    marker = f"{uuid.uuid4().int % 10**6 + 10**6}"
    killer = threading.Thread(
        target=lambda: (
            wait_until(lambda: bool(processes_matching(f"sleep {marker}")))
            and server.kill()
        )
    )
    killer.start()
    started = time.monotonic()
    with pytest.raises(ConnectionLostError, match="outcome is unknown") as caught:
        run(transport, f"sleep {marker}", timeout=30)
    killer.join()
    assert time.monotonic() - started < 5
    assert caught.value.retryable
    with pytest.raises(ConnectError, match="connection refused"):  # next step
        run(transport, "true")


def test_silent_partition_is_detected_by_keepalives(
    server_factory, tmp_path, connect, run
):
    server = server_factory("frozen")
    known = tmp_path / "known_hosts"
    known.write_text(server.known_hosts_line() + "\n")
    transport = connect(server, known, keepalive=0.3)
    marker = f"{uuid.uuid4().int % 10**6 + 10**6}"

    def freeze() -> None:  # the session goes silent; TCP stays open
        wait_until(lambda: bool(processes_matching(f"sleep {marker}")))
        assert server.pid is not None
        for pid in process_tree(server.pid)[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    freezer = threading.Thread(target=freeze)
    freezer.start()
    started = time.monotonic()
    with pytest.raises(ConnectionLostError, match="keepalives"):
        run(transport, f"sleep {marker}", timeout=30)
    freezer.join()
    assert time.monotonic() - started < 0.3 * 3 + 2
