"""Central log collection: every audit record reaches a syslog receiver as RFC 5424
(UDP, TCP, a unix socket), byte for byte the local line; a collector that is down
is a warning and never costs a local record."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest

from runbook_engine.record.forward import Forwarder, parse_target
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e

HELLO = str(ROOT / "examples" / "hello.yaml")
HEADER = re.compile(
    rb"^<(?P<pri>\d+)>1 (?P<ts>\S+) (?P<host>\S+) runbook (?P<pid>\d+) (?P<msgid>\S+)"
    rb' \[runbook@32473 run_id="(?P<run>[^"]*)" seq="(?P<seq>\d+)"\] (?P<msg>.*)$',
    re.S,
)


def _local_lines(state_dir):
    return (state_dir / "audit.jsonl").read_bytes().splitlines()


class Receiver:
    def __init__(self, kind: str, path=None) -> None:
        self.messages: list[bytes] = []
        if kind == "unix":
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.bind(str(path))
            self.url = f"unix://{path}"
        elif kind == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
            self.url = f"syslog://127.0.0.1:{self.sock.getsockname()[1]}"
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(("127.0.0.1", 0))
            self.sock.listen()
            self.url = f"syslog+tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.kind = kind
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        if self.kind != "tcp":
            while not self._stop.is_set():
                try:
                    self.messages.append(self.sock.recv(65536))
                except TimeoutError:
                    continue
            return
        buffer = b""
        conn = None
        try:
            self._serve_stream(buffer, conn)
        finally:
            if self._conn is not None:
                self._conn.close()

    _conn: socket.socket | None = None

    def _serve_stream(self, buffer: bytes, conn: socket.socket | None) -> None:
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn, _ = self.sock.accept()
                    conn.settimeout(0.2)
                    self._conn = conn
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                conn.close()
                conn = self._conn = None
                continue
            buffer += chunk
            while b" " in buffer:  # octet counting: LEN SP MSG
                length, rest = buffer.split(b" ", 1)
                if len(rest) < int(length):
                    break
                self.messages.append(rest[: int(length)])
                buffer = rest[int(length) :]

    def wait_for(self, count: int) -> list[bytes]:
        deadline = time.monotonic() + 10
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop.set()
        self._thread.join()
        self.sock.close()
        return self.messages


@pytest.mark.parametrize("kind", ["udp", "tcp", "unix"])
def test_every_record_reaches_the_collector_as_the_local_line(
    runbook_cli, state_dir, tmp_path, kind
):
    receiver = Receiver(kind, tmp_path / "log.sock")
    result = runbook_cli("run", HELLO, "--audit-forward", receiver.url)
    assert result.code == 0, result.output
    local = _local_lines(state_dir)
    got = receiver.wait_for(len(local))
    parsed = [HEADER.match(message) for message in got]
    assert all(parsed), got[:2]
    assert [m.group("msg") for m in parsed] == local  # byte for byte, in order
    assert {m.group("pri") for m in parsed} == {b"110"}  # log audit, informational
    assert parsed[0].group("msgid") == b"run.started"
    assert "warning" not in result.stderr


def test_failed_records_are_warnings_and_the_config_file_can_name_the_collector(
    runbook_cli, write_runbook, state_dir, tmp_path
):
    receiver = Receiver("udp")
    (tmp_path / "runbook.toml").write_text(f'audit_forward = "{receiver.url}"\n')
    (tmp_path / ".git").mkdir()
    rb = write_runbook("""
        version: 1
        name: failing
        steps:
          - id: boom
            run: exit 3
    """)
    result = runbook_cli("run", str(rb), cwd=tmp_path)
    assert result.code == 1
    got = receiver.wait_for(len(_local_lines(state_dir)))
    failed = [m for m in got if b'"step.finished"' in m]
    assert failed and failed[0].startswith(b"<108>1 ")  # log audit, warning


def test_a_collector_that_is_down_is_a_warning_and_the_local_log_is_whole(
    runbook_cli, state_dir
):
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = runbook_cli(
        "run", HELLO, "--audit-forward", f"syslog+tcp://127.0.0.1:{port}"
    )
    assert result.code == 0, result.output
    assert result.stderr.count("audit forwarding to") == 2  # failed, then not sent
    assert "records are kept in the local audit log" in result.stderr
    events = [line for line in _local_lines(state_dir) if b'"run.finished"' in line]
    assert len(events) == 1
    assert runbook_cli("audit", "verify").code == 0


def test_records_held_back_go_out_in_order_when_the_collector_is_back(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    warnings: list[str] = []
    forwarder = Forwarder(
        parse_target(f"syslog+tcp://127.0.0.1:{port}"), warnings.append, retry_after=0
    )
    forwarder.send([b'{"event": "one", "seq": 1}'])
    assert "failed" in warnings[0]
    server = socket.create_server(("127.0.0.1", port))
    server.settimeout(5)
    forwarder.send([b'{"event": "two", "seq": 2}'])
    conn, _ = server.accept()
    conn.settimeout(5)
    received = b""
    while received.count(b"runbook@32473") < 2:
        received += conn.recv(65536)
    assert received.index(b'"one"') < received.index(b'"two"')
    assert "works again" in warnings[-1]
    forwarder.close()
    conn.close()
    server.close()


def test_a_malformed_collector_url_is_exit_2_before_anything_runs(
    runbook_cli, state_dir
):
    result = runbook_cli("run", HELLO, "--audit-forward", "http://collector")
    assert result.code == 2 and "syslog://HOST:PORT" in result.stderr
    assert not (state_dir / "audit.jsonl").exists()
