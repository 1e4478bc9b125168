"""Host key trust against real sshd: unknown, accepted, changed, hashed, revoked,
pinned, and known_hosts files with lines we cannot parse."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import pytest

from runbook_engine.errors import ChangedHostKeyError, HostKeyError, UnknownHostKeyError
from runbook_engine.transports.hostkeys import KnownHosts, fingerprint
from tests.support.sshd import make_client_key

pytestmark = pytest.mark.ssh

# a valid key line for some other host, and lines a parser might choke on
_OTHER = (
    "other.example ssh-ed25519 "
    "AAAAC3NzaC1lZDI1NTE5AAAAIHfQv8bYh5l1b1c0dZVqkQk5Ykzg3UOkS2H5pG1vG0Zy"
)
_MESSY = (
    "# my hosts, hand-edited\n"
    f"{_OTHER}\n"
    "|1|c2FsdHNhbHRzYWx0c2FsdHNhbHQ=|aGFzaGhhc2hoYXNoaGFzaGhhc2g= "
    "ssh-rsa AAAAB3NzaC1yc2E=\n"
    "this line is garbage\n"
    "@cert-authority *.example ssh-ed25519 "
    "AAAAC3NzaC1lZDI1NTE5AAAAIHfQv8bYh5l1b1c0dZVqkQk5Ykzg3UOkS2H5pG1vG0Zy\n"
    "\n"
    "   # indented comment without trailing newline"
)


def _hashed_line(server) -> str:
    salt = os.urandom(20)
    name = f"[{server.host}]:{server.port}"
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    key_type, blob = server.host_public_line.split()[:2]
    encoded = (
        f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"
    )
    return f"{encoded} {key_type} {blob}"


def test_unknown_host_is_refused_with_the_way_to_accept_it(servers, tmp_path, connect):
    server = servers[0]
    known = tmp_path / "known_hosts"
    with pytest.raises(UnknownHostKeyError) as caught:
        connect(server, known)
    message = str(caught.value)
    assert "ssh-ed25519" in message
    assert server.host_key_fingerprint in message
    assert "--accept-new-host-keys" in message
    assert f"ssh-keyscan -p {server.port} -t ed25519 127.0.0.1 >> {known}" in message
    assert not caught.value.retryable
    assert not known.exists()


def test_accept_new_appends_one_line_and_keeps_the_rest_byte_for_byte(
    servers, tmp_path, connect, run
):
    server = servers[0]
    known = tmp_path / "known_hosts"
    known.write_text(_MESSY)
    before = known.read_bytes()
    transport = connect(server, known, accept_new=True)
    assert transport.describe()["host_key_status"] == "added"
    after = known.read_bytes()
    assert after.startswith(before)
    assert after[len(before) :] == f"\n{server.known_hosts_line()}\n".encode()
    assert run(transport, "true")[0].rc == 0
    again = connect(server, known, accept_new=True)  # now simply known
    assert again.describe()["host_key_status"] == "known"
    assert known.read_bytes() == after


def test_changed_key_is_refused_even_with_accept_new(
    servers, server_factory, tmp_path, connect
):
    impostor = server_factory("impostor")
    known = tmp_path / "known_hosts"
    # known_hosts holds servers[0]'s key under the impostor's address and port
    key_type, blob = servers[0].host_public_line.split()[:2]
    known.write_text(f"[127.0.0.1]:{impostor.port} {key_type} {blob}\n")
    before = known.read_bytes()
    with pytest.raises(ChangedHostKeyError) as caught:
        connect(impostor, known, accept_new=True)
    assert "may be an attack" in str(caught.value)
    assert impostor.host_key_fingerprint in str(caught.value)
    assert f"{known}:1" in str(caught.value)
    assert known.read_bytes() == before
    assert "Accepted publickey" not in impostor.log()  # refused before any login


def test_hashed_entries_are_recognised(servers, tmp_path, connect, run):
    known = tmp_path / "known_hosts"
    known.write_text(_hashed_line(servers[1]) + "\n")
    transport = connect(servers[1], known)
    assert transport.describe()["host_key_status"] == "known"
    assert run(transport, "true")[0].rc == 0


def test_revoked_key_is_refused(servers, tmp_path, connect):
    server = servers[2]
    known = tmp_path / "known_hosts"
    key_type, blob = server.host_public_line.split()[:2]
    known.write_text(f"@revoked * {key_type} {blob}\n{server.known_hosts_line()}\n")
    with pytest.raises(HostKeyError, match="@revoked"):
        connect(server, known, accept_new=True)


def test_unparsable_lines_are_reported_with_line_numbers_not_fatal(
    servers, tmp_path, connect
):
    server = servers[0]
    known = tmp_path / "known_hosts"
    known.write_text(_MESSY + "\n" + server.known_hosts_line() + "\n")
    facts = connect(server, known).describe()
    assert facts["host_key_status"] == "known"
    warnings = facts["known_hosts_warnings"]
    assert (
        warnings == f"{known}:4: skipped line: the key is not valid base64 SSH key data"
    )


def test_pinned_key_wins_over_known_hosts(servers, tmp_path, connect):
    server = servers[1]
    known = tmp_path / "known_hosts"
    pinned = connect(server, known, host_key=server.host_key_fingerprint)
    assert pinned.describe()["host_key_status"] == "pinned"
    assert not known.exists()
    wrong = fingerprint(b"\x00\x00\x00\x0bssh-ed25519" + b"x" * 36)
    known.write_text(server.known_hosts_line() + "\n")
    with pytest.raises(ChangedHostKeyError, match="pins"):
        connect(server, known, host_key=wrong)


def test_host_known_only_by_another_key_type_is_refused_as_changed(
    servers, tmp_path, connect
):
    server = servers[2]
    other = make_client_key(tmp_path / "keys", "ecdsa", key_type="ecdsa")
    key_type, blob = other.public_line.split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{server.port} {key_type} {blob}\n")
    with pytest.raises(ChangedHostKeyError, match="may be an attack"):
        connect(server, known, accept_new=True)


def test_wildcard_and_negated_patterns(tmp_path):
    key_type, blob = _OTHER.split()[1:3]
    path = tmp_path / "known_hosts"
    path.write_text(f"*.example,!bad.example {key_type} {blob}\n")
    table = KnownHosts.load(str(path))
    assert table.for_host("good.example")
    assert not table.for_host("bad.example")
    assert not table.for_host("example.org")
