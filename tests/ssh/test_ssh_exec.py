"""Commands over SSH against real sshd: what only SSH has (several hosts, one
connection, env names, ``$HOME``, a late exit status, refused sessions). What every
transport does is in ``tests/transports/test_contract.py``."""

from __future__ import annotations

import contextlib
import threading
import uuid

import pytest

from runbook_engine.errors import ConnectError, ConnectionLostError
from runbook_engine.transports.base import Stream
from tests.support.sshd import processes_matching, wait_until

pytestmark = pytest.mark.ssh


def test_runs_on_three_hosts_each_with_its_own_exit_code(
    servers, trusted, connect, run
):
    results = []
    for index, server in enumerate(servers):
        transport = connect(server, trusted)
        results.append(run(transport, f'echo "$HOME"; exit {index + 3}'))
    assert [r.rc for r, _ in results] == [3, 4, 5]
    homes = [out.text().strip() for _, out in results]
    assert homes == [str(s.home) for s in servers]  # three distinct hosts


def test_many_commands_reuse_one_connection(servers, trusted, connect, run):
    logins_before = servers[0].log().count("Accepted publickey")
    transport = connect(servers[0], trusted)
    for _ in range(20):
        result, _ = run(transport, "true")
        assert result.rc == 0
    assert servers[0].log().count("Accepted publickey") == logins_before + 1


def test_invalid_env_name_is_refused_before_sending(servers, trusted, connect, run):
    transport = connect(servers[0], trusted)
    with pytest.raises(ValueError, match="environment variable name"):
        run(transport, "true", env={"X; touch /tmp/pwned": "1"})


def test_relative_cwd_is_relative_to_the_remote_home(servers, trusted, connect, run):
    server = servers[0]
    (server.home / "dir with space").mkdir(exist_ok=True)
    transport = connect(server, trusted)
    result, out = run(transport, "pwd", cwd="dir with space")
    assert (result.rc, out.text().strip()) == (0, str(server.home / "dir with space"))
    result, out = run(transport, "echo never", cwd="/nonexistent/dir")
    assert "nonexistent" in out.text(Stream.STDERR)


def test_an_exit_status_that_comes_long_after_the_output_is_waited_for(
    servers, trusted, connect, run
):
    # the output streams close (EOF) seconds before the exit status arrives, as
    # they do for every command on a controller busy with 500 hosts
    transport = connect(servers[0], trusted)
    late = "echo out; exec >&- 2>&-; sleep 2; exit 7"
    result, out = run(transport, late)
    assert (result.rc, result.timed_out, out.text()) == (7, False, "out\n")
    result, _ = run(transport, late, timeout=30)
    assert result.rc == 7
    result, _ = run(transport, late, timeout=0.5)  # ...but never past the timeout
    assert (result.rc, result.timed_out) == (None, True)


def test_a_refused_session_is_retried_until_the_server_has_room(
    server_factory, tmp_path, connect, run
):
    server = server_factory("cramped", settings={"MaxSessions": "1"})
    known = tmp_path / "known_hosts"
    known.write_text(server.known_hosts_line() + "\n")
    transport = connect(server, known)
    busy = threading.Thread(target=run, args=(transport, "sleep 0.5"))
    busy.start()
    assert wait_until(lambda: bool(processes_matching("sleep 0.5")))
    result, out = run(transport, "echo got a session")  # refused, then retried
    busy.join()
    assert (result.rc, out.text()) == (0, "got a session\n")


def test_a_session_refused_for_good_fails_with_the_servers_words(
    server_factory, tmp_path, connect, run
):
    server = server_factory("full", settings={"MaxSessions": "1"})
    known = tmp_path / "known_hosts"
    known.write_text(server.known_hosts_line() + "\n")
    transport = connect(server, known)
    marker = f"{uuid.uuid4().int % 10**6 + 10**6}"

    def hold_the_only_session() -> None:
        with contextlib.suppress(ConnectionLostError):  # closed by the test
            run(transport, f"sleep {marker}")

    busy = threading.Thread(target=hold_the_only_session)
    busy.start()
    try:
        assert wait_until(lambda: bool(processes_matching(f"sleep {marker}")))
        with pytest.raises(ConnectError, match=r"refused a session.*7 attempts") as no:
            run(transport, "echo never")
        assert no.value.retryable and "\n" not in str(no.value)
    finally:
        transport.close()  # ends the sleep's session
        busy.join()


def test_describe_reports_address_and_host_key(servers, trusted, connect):
    server = servers[1]
    facts = connect(server, trusted).describe()
    assert facts["address"] == f"127.0.0.1:{server.port}"
    assert facts["host_key"] == server.host_key_fingerprint
    assert facts["host_key_status"] == "known"
