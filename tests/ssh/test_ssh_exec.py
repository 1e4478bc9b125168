"""Commands over SSH against real sshd: output, exit codes, env, cwd, timeouts."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

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


def test_unicode_output_and_arguments_survive(servers, trusted, connect, run):
    transport = connect(servers[0], trusted)
    result, out = run(
        transport, argv=("printf", "%s|%s", "héllo wörld", "日本 'q' $HOME")
    )
    assert result.rc == 0
    assert out.text() == "héllo wörld|日本 'q' $HOME"
    result, out = run(transport, "echo 'ünïcode ✓'; echo err-✗ >&2")
    assert (out.text(), out.text(Stream.STDERR)) == ("ünïcode ✓\n", "err-✗\n")


def test_env_values_arrive_exactly(servers, trusted, connect, run):
    transport = connect(servers[0], trusted)
    tricky = 'it\'s "quoted"\nsecond line $HOME `id` $(id) \\ ; && |'
    result, out = run(
        transport,
        'printf %s "$TRICKY"; printf "|%s" "$EMPTY"',
        env={"TRICKY": tricky, "EMPTY": ""},
    )
    assert result.rc == 0
    assert out.text() == tricky + "|"


def test_invalid_env_name_is_refused_before_sending(servers, trusted, connect, run):
    transport = connect(servers[0], trusted)
    with pytest.raises(ValueError, match="environment variable name"):
        run(transport, "true", env={"X; touch /tmp/pwned": "1"})


def test_cwd_absolute_relative_and_missing(servers, trusted, connect, run):
    server = servers[0]
    (server.home / "dir with space").mkdir(exist_ok=True)
    transport = connect(server, trusted)
    result, out = run(transport, "pwd", cwd="dir with space")
    assert (result.rc, out.text().strip()) == (0, str(server.home / "dir with space"))
    result, out = run(transport, "pwd", cwd="/tmp")
    assert out.text().strip() == "/tmp"
    result, out = run(transport, "echo never", cwd="/nonexistent/dir")
    assert result.rc != 0
    assert "never" not in out.text()
    assert "nonexistent" in out.text(Stream.STDERR)


def test_user_command_gets_an_empty_stdin(servers, trusted, connect, run):
    transport = connect(servers[0], trusted)
    started = time.monotonic()
    _, out = run(transport, "cat; echo rc=$?", timeout=5)
    assert out.text() == "rc=0\n"
    assert time.monotonic() - started < 2


def test_output_streams_while_the_command_runs(servers, trusted, connect, run):
    transport = connect(servers[0], trusted)
    started = time.monotonic()
    result, out = run(transport, "echo first; sleep 1; echo second")
    first_at = next(t for s, d, t in out.chunks if b"first" in d)
    assert result.rc == 0
    assert first_at - started < 0.8
    assert out.text() == "first\nsecond\n"


def test_env_values_never_appear_in_a_process_listing(servers, trusted, connect, run):
    transport = connect(servers[0], trusted)
    secret = f"s3cret-{uuid.uuid4().hex}"
    marker = f"{uuid.uuid4().int % 10**6 + 10**6}"  # a unique sleep duration
    seen: dict[str, list[int]] = {}

    def watch() -> None:
        wait_until(lambda: bool(processes_matching(f"sleep {marker}")), timeout=5)
        seen["sleep"] = processes_matching(f"sleep {marker}")
        seen["secret"] = processes_matching(secret)

    watcher = threading.Thread(target=watch)
    watcher.start()
    run(transport, f"sleep {marker} & wait", env={"TOKEN": secret}, timeout=1.5)
    watcher.join()
    assert seen["sleep"], (
        "the remote process was not visible, so the check proves nothing"
    )
    assert seen["secret"] == []


def test_timeout_kills_the_remote_process_tree(servers, trusted, connect, run):
    transport = connect(servers[0], trusted)
    marker = f"{uuid.uuid4().int % 10**6 + 10**6}"
    started = time.monotonic()
    result, _ = run(
        transport, f"sleep {marker} & sleep {marker}; echo done", timeout=0.5
    )
    assert result.timed_out and result.rc is None
    assert time.monotonic() - started < 3
    assert wait_until(lambda: not processes_matching(f"sleep {marker}"), timeout=3)
    again, out = run(transport, "echo still usable")  # the connection survives
    assert (again.rc, out.text()) == (0, "still usable\n")


def test_timeout_kills_a_process_that_ignores_sigterm(servers, trusted, connect, run):
    transport = connect(servers[0], trusted)
    marker = f"{uuid.uuid4().int % 10**6 + 10**6}"
    result, _ = run(transport, f"trap '' TERM; sleep {marker}", timeout=0.3)
    assert result.timed_out
    assert wait_until(lambda: not processes_matching(f"sleep {marker}"), timeout=3)


def test_cancel_kills_the_remote_process_promptly(servers, trusted, connect, run):
    transport = connect(servers[0], trusted)
    marker = f"{uuid.uuid4().int % 10**6 + 10**6}"
    cancel = threading.Event()
    threading.Timer(0.4, cancel.set).start()
    started = time.monotonic()
    result, _ = run(transport, f"sleep {marker}", cancel=cancel)
    assert result.interrupted and result.rc is None
    assert time.monotonic() - started < 2.5
    assert wait_until(lambda: not processes_matching(f"sleep {marker}"), timeout=3)


def test_describe_reports_address_and_host_key(servers, trusted, connect):
    server = servers[1]
    facts = connect(server, trusted).describe()
    assert facts["address"] == f"127.0.0.1:{server.port}"
    assert facts["host_key"] == server.host_key_fingerprint
    assert facts["host_key_status"] == "known"
