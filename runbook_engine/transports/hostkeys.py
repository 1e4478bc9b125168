"""Host key trust: the known_hosts policy, in OpenSSH's file format.

Owns parsing known_hosts (plain and hashed ``|1|`` host patterns, wildcards and
negation, ``@revoked`` and ``@cert-authority`` markers), deciding whether a server
key is trusted, and appending a new key when the operator asked for it
(``--accept-new-host-keys``, OpenSSH's ``accept-new``). It never rewrites the file:
comments, hashed entries and lines it cannot parse survive byte for byte.

Rules: a key pinned in the inventory (``host_key: SHA256:...``) wins over the file;
a ``@revoked`` key is refused; a known key is trusted; a different key for a known
host is always refused ("may be an attack"), whatever the flags; an unknown host is
refused with the way to accept it, unless ``accept_new``. No network, no paramiko:
callers pass the key's type and wire blob.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import hmac
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ChangedHostKeyError, HostKeyError, UnknownHostKeyError

TrustStatus = Literal["known", "pinned", "added"]
_MARKERS = ("@revoked", "@cert-authority")
_HASH_MAGIC = "|1|"


def host_id(address: str, port: int) -> str:
    """The name known_hosts uses: ``host`` on port 22, else ``[host]:port``."""
    return address.lower() if port == 22 else f"[{address.lower()}]:{port}"


def fingerprint(blob: bytes) -> str:
    """``SHA256:...`` as ``ssh-keygen -lf`` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip(
        "="
    )


def blob_key_type(blob: bytes) -> str:
    """The key type written inside an SSH public key blob (``ssh-ed25519``...)."""
    (length,) = struct.unpack(">I", blob[:4])
    return blob[4 : 4 + length].decode("ascii")


@dataclass(frozen=True, slots=True)
class TrustDecision:
    """Why a server key was trusted, for the audit log."""

    status: TrustStatus
    key_type: str
    fingerprint: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Entry:
    line: int
    marker: str | None
    patterns: str
    key_type: str
    blob: bytes

    def matches(self, name: str) -> bool:
        if self.patterns.startswith(_HASH_MAGIC):
            return _hashed_matches(self.patterns, name)
        return _patterns_match(self.patterns, name)


@dataclass(frozen=True, slots=True)
class KnownHosts:
    """A parsed known_hosts file; ``problems`` name the lines that were skipped."""

    path: str
    entries: tuple[_Entry, ...]
    problems: tuple[str, ...]

    @classmethod
    def load(cls, path: str) -> KnownHosts:
        try:
            text = Path(path).read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return cls(path, (), ())
        except OSError as exc:
            return cls(path, (), (f"{path}: cannot read: {exc.strerror}",))
        entries, problems = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            try:
                entry = _parse_line(number, line)
            except ValueError as exc:
                problems.append(f"{path}:{number}: skipped line: {exc}")
                continue
            if entry is not None:
                entries.append(entry)
        return cls(path, tuple(entries), tuple(problems))

    def for_host(self, name: str) -> list[_Entry]:
        return [
            e for e in self.entries if e.marker != "@cert-authority" and e.matches(name)
        ]

    def known_key_types(self, name: str) -> list[str]:
        return list(
            dict.fromkeys(e.key_type for e in self.for_host(name) if e.marker is None)
        )


def _parse_line(number: int, line: str) -> _Entry | None:
    fields = line.split()
    if not fields or fields[0].startswith("#"):
        return None
    marker = None
    if fields[0].startswith("@"):
        if fields[0] not in _MARKERS:
            raise ValueError(f"unknown marker {fields[0]!r}")
        marker, fields = fields[0], fields[1:]
    if len(fields) < 3:
        raise ValueError("expected 'host-patterns key-type base64-key'")
    patterns, key_type, encoded = fields[:3]
    try:
        blob = base64.b64decode(encoded, validate=True)
        embedded = blob_key_type(blob)
    except (binascii.Error, struct.error, UnicodeDecodeError) as exc:
        raise ValueError("the key is not valid base64 SSH key data") from exc
    if embedded != key_type:
        raise ValueError(
            f"key type {key_type!r} does not match the key data ({embedded})"
        )
    return _Entry(number, marker, patterns, key_type, blob)


def _patterns_match(patterns: str, name: str) -> bool:
    matched = False
    for pattern in patterns.lower().split(","):
        negated = pattern.startswith("!")
        if _wildcard(pattern.lstrip("!")).fullmatch(name):
            if negated:
                return False
            matched = True
    return matched


def _wildcard(pattern: str) -> re.Pattern[str]:
    """Patterns know only ``*`` and ``?``: ``[`` is literal (``[host]:port``)."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts))


def _hashed_matches(patterns: str, name: str) -> bool:
    try:
        salt_b64, hash_b64 = patterns[len(_HASH_MAGIC) :].split("|", 1)
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(hash_b64)
    except (ValueError, binascii.Error):
        return False
    actual = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(actual, expected)


# -- the policy ---------------------------------------------------------------------


def verify_host_key(
    *,
    address: str,
    port: int,
    blob: bytes,
    known_hosts: str,
    pin: str | None = None,
    accept_new: bool = False,
) -> TrustDecision:
    """Trust ``blob`` for ``address:port`` or raise a ``HostKeyError``."""
    name = host_id(address, port)
    table = KnownHosts.load(known_hosts)
    key_type, fp = blob_key_type(blob), fingerprint(blob)
    _refuse_revoked(table, name, blob)
    if pin is not None:
        if _same_fingerprint(pin, fp):
            return TrustDecision("pinned", key_type, fp, table.problems)
        raise ChangedHostKeyError(
            f"host key of {name} is {key_type} {fp} but the inventory pins {pin}: "
            "this may be an attack (someone intercepting the connection); refused"
        )
    if _is_known(table, name, blob):
        return TrustDecision("known", key_type, fp, table.problems)
    if not accept_new:
        raise UnknownHostKeyError(
            _unknown_message(name, address, port, key_type, fp, table)
        )
    return _append_new(name, blob, key_type, fp, known_hosts)


def _same_fingerprint(pin: str, actual: str) -> bool:
    return pin.strip().rstrip("=") == actual


def _refuse_revoked(table: KnownHosts, name: str, blob: bytes) -> None:
    for entry in table.for_host(name):
        if entry.marker == "@revoked" and entry.blob == blob:
            raise HostKeyError(
                f"host key of {name} ({fingerprint(blob)}) is marked @revoked in "
                f"{table.path}:{entry.line}; refused"
            )


def _is_known(table: KnownHosts, name: str, blob: bytes) -> bool:
    """True when ``blob`` is listed; raises when the host is known by other keys."""
    listed = [e for e in table.for_host(name) if e.marker is None]
    if any(e.blob == blob for e in listed):
        return True
    if not listed:
        return False
    old = listed[0]
    raise ChangedHostKeyError(
        f"HOST KEY OF {name} HAS CHANGED: it presents {blob_key_type(blob)} "
        f"{fingerprint(blob)} but {table.path}:{old.line} holds {old.key_type} "
        f"{fingerprint(old.blob)}. This may be an attack (someone intercepting the "
        "connection), or the host was reinstalled. Refused, and "
        "--accept-new-host-keys never replaces a key; if the change is expected, "
        f"remove the old key with: ssh-keygen -R '{name}' -f {table.path}"
    )


def _unknown_message(
    name: str, address: str, port: int, key_type: str, fp: str, table: KnownHosts
) -> str:
    short = key_type.removeprefix("ssh-").split("-")[0]
    notes = "".join(f"\n  note: {problem}" for problem in table.problems)
    return (
        f"host key of {name} is unknown: {key_type} {fp}. Compare it with the "
        "host's own (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on the host), then "
        "run again with --accept-new-host-keys, pin it in the inventory "
        f"(host_key: {fp}), or add it yourself: "
        f"ssh-keyscan -p {port} -t {short} {address} >> {table.path}{notes}"
    )


def _append_new(
    name: str, blob: bytes, key_type: str, fp: str, path: str
) -> TrustDecision:
    """Append under an exclusive lock, re-checking first: another run may have added
    this key (nothing to do) or a different one (refused) meanwhile."""
    target = Path(path)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        table = KnownHosts.load(path)
        if _is_known(table, name, blob):
            return TrustDecision("known", key_type, fp, table.problems)
        line = f"{name} {key_type} {base64.b64encode(blob).decode()}\n"
        os.write(fd, (_separator(target) + line).encode())
        os.fsync(fd)
        return TrustDecision("added", key_type, fp, table.problems)
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _separator(path: Path) -> str:
    """A newline when the file does not end with one, so the last line stays whole."""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return ""
        handle.seek(-1, os.SEEK_END)
        return "" if handle.read(1) == b"\n" else "\n"


def known_key_types(known_hosts: str, address: str, port: int) -> list[str]:
    """Key types known_hosts lists for this host, to ask the server for those first
    (as OpenSSH orders its HostKeyAlgorithms)."""
    return KnownHosts.load(known_hosts).known_key_types(host_id(address, port))
