"""Real OpenSSH ``sshd`` servers on 127.0.0.1, one per simulated host.

Used by the SSH tests and by ``bench/``; it imports nothing from pytest. Each server
has its own directory holding an ed25519 host key, an ``authorized_keys`` file, a
config, a log and a ``home`` directory, and listens on its own free port.

Quiet remote environment: sshd runs every command as ``$SHELL -c CMD`` and, for
root, that shell is bash, which sources ``~/.bashrc`` when started by sshd (a slow
``pyenv init`` there costs ~100 ms per command). Each server sets ``HOME`` to its
own empty ``home`` directory with ``SetEnv``, so bash finds no ``~/.bashrc``, and
each simulated host gets a home of its own (remote locks and relative paths do not
collide between hosts that are really the same machine). The transport resolves
relative paths against ``$HOME``, so this is what a real host looks like to it.

Options: ``sftp=False`` starts a server without the ``sftp`` subsystem (a hardened
host: file transfer must fall back to exec channels); ``settings`` overrides or adds
``sshd_config`` keywords (the benchmark raises ``MaxStartups`` and ``MaxSessions``).

Failure is loud: ``SSHDStartError`` carries the sshd log. Nothing here skips.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

HOST = "127.0.0.1"
_START_TIMEOUT = 15.0


class SSHDStartError(RuntimeError):
    """sshd could not be started; the message ends with its log."""


def find_sshd() -> str:
    """Absolute path of sshd (it re-execs itself, so it must be absolute)."""
    for candidate in (shutil.which("sshd"), "/usr/sbin/sshd", "/usr/local/sbin/sshd"):
        if candidate and os.access(candidate, os.X_OK):
            return str(Path(candidate).resolve())
    raise SSHDStartError(
        "sshd not found: install openssh-server (apt-get install -y openssh-server)"
    )


def _openssh_version(sshd: str) -> tuple[int, int]:
    out = subprocess.run([sshd, "-V"], capture_output=True, text=True, check=False)
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", out.stdout + out.stderr)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _keygen(path: Path, key_type: str, passphrase: str, comment: str) -> None:
    argv = ["ssh-keygen", "-q", "-t", key_type, "-N", passphrase, "-C", comment]
    argv += ["-b", "2048"] if key_type == "rsa" else []  # test keys: fast to make
    subprocess.run(
        [*argv, "-f", str(path)],
        check=True,
        capture_output=True,
    )


def fingerprint_of(public_line: str) -> str:
    """``SHA256:...`` of an OpenSSH public key line, as ``ssh-keygen -lf`` shows."""
    blob = base64.b64decode(public_line.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode()
    return "SHA256:" + digest.rstrip("=")


@dataclass(frozen=True)
class ClientKey:
    """A client key pair on disk; ``public_line`` goes into ``authorized_keys``."""

    path: Path
    public_line: str
    passphrase: str | None = None


def make_client_key(
    directory: Path,
    name: str = "id_ed25519",
    *,
    key_type: str = "ed25519",
    passphrase: str | None = None,
) -> ClientKey:
    """Create a key pair (ed25519, ecdsa or rsa) at ``directory/name``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    _keygen(path, key_type, passphrase or "", f"runbook-test-{name}")
    public = Path(f"{path}.pub").read_text().strip()
    return ClientKey(path=path, public_line=public, passphrase=passphrase)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (per-connection sshd children call setsid(),
    so a process group kill would miss them)."""
    children = _children_map()
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def _signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _freeze_tree(pid: int) -> list[int]:
    """SIGSTOP the tree until no new process appears, so none escapes the kill."""
    frozen: set[int] = set()
    while True:
        tree = set(process_tree(pid)) - frozen
        if not tree:
            return sorted(frozen)
        _signal_all(tree, signal.SIGSTOP)
        frozen |= tree


class SSHServer:
    """One sshd = one simulated host. ``start()``, then ``stop()`` (idempotent) or
    ``kill()`` (SIGKILL to the listener and every session it forked)."""

    def __init__(
        self,
        directory: Path,
        authorized_keys: Sequence[str],
        *,
        name: str = "sshd",
        sftp: bool = True,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.sftp = sftp
        self.settings = dict(settings or {})
        self.directory = directory
        self.home = directory / "home"
        self.host = HOST
        self.port = 0
        self.host_key_path = directory / "ssh_host_ed25519_key"
        self.authorized_keys_path = directory / "authorized_keys"
        self.config_path = directory / "sshd_config"
        self.log_path = directory / "sshd.log"
        self._authorized = list(authorized_keys)
        self._process: subprocess.Popen[bytes] | None = None

    # -- facts about the server ----------------------------------------------------
    @property
    def host_public_line(self) -> str:
        return Path(f"{self.host_key_path}.pub").read_text().strip()

    @property
    def host_key_type(self) -> str:
        return self.host_public_line.split()[0]

    @property
    def host_key_fingerprint(self) -> str:
        return fingerprint_of(self.host_public_line)

    def known_hosts_line(self) -> str:
        """``[127.0.0.1]:PORT ssh-ed25519 AAAA...`` (no newline)."""
        key_type, blob = self.host_public_line.split()[:2]
        return f"[{self.host}]:{self.port} {key_type} {blob}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def authorize(self, public_line: str) -> None:
        """Add a client key to this server's ``authorized_keys`` (read per login)."""
        with self.authorized_keys_path.open("a") as handle:
            handle.write(public_line.strip() + "\n")

    # -- lifecycle ------------------------------------------------------------------
    def start(self, timeout: float = _START_TIMEOUT) -> SSHServer:
        sshd = find_sshd()
        self._prepare_files()
        for _attempt in range(3):  # a free port can be taken between probe and bind
            self.port = _free_port()
            self._write_config(_openssh_version(sshd))
            self._launch(sshd)
            if self._wait_ready(timeout):
                return self
            if "Address already in use" not in self.log():
                break
        log = self.log()
        self.stop()
        raise SSHDStartError(
            f"sshd {self.name} did not start on port {self.port}:\n{log}"
        )

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            pids = _freeze_tree(process.pid)
            _signal_all(pids, signal.SIGKILL)
        process.wait(timeout=10)

    def kill(self) -> None:
        """Simulate a host dying: SIGKILL sshd and every session under it."""
        self.stop()

    def __enter__(self) -> SSHServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------------
    def _prepare_files(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(exist_ok=True)
        if not self.host_key_path.exists():
            _keygen(self.host_key_path, "ed25519", "", f"{self.name}-host")
        self.authorized_keys_path.write_text(
            "".join(line.strip() + "\n" for line in self._authorized)
        )
        self.authorized_keys_path.chmod(0o600)
        if os.geteuid() == 0:  # sshd refuses to start without its privsep dir
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)

    def _write_config(self, version: tuple[int, int]) -> None:
        lines = [
            f"ListenAddress {self.host}",
            f"Port {self.port}",
            f"HostKey {self.host_key_path}",
            f"PidFile {self.directory / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys_path}",
            "PermitRootLogin prohibit-password",
            "StrictModes no",
            "UsePAM no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "AllowTcpForwarding yes",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            "LogLevel VERBOSE",
            "MaxStartups 100:30:200",
            "MaxSessions 100",
            f"SetEnv HOME={self.home}",
        ]
        if self.sftp:
            lines.append("Subsystem sftp internal-sftp")
        if version >= (9, 8):  # penalties would lock tests out after a killed session
            lines.append("PerSourcePenalties no")
        overridden = {k.lower() for k in self.settings}
        lines = [line for line in lines if line.split()[0].lower() not in overridden]
        lines += [f"{key} {value}" for key, value in self.settings.items()]
        self.config_path.write_text("\n".join(lines) + "\n")

    def _launch(self, sshd: str) -> None:
        self.log_path.write_bytes(b"")
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sshd, "-D", "-e", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.directory,
            )

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            if _shows_banner(self.host, self.port):
                return True
            time.sleep(0.02)
        return False


def _shows_banner(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def processes_matching(marker: str) -> list[int]:
    """Pids whose command line contains ``marker``: the "remote" processes of these
    servers run on this machine, so tests can see them."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry.name))
    return found


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def start_servers(
    count: int,
    root: Path | None = None,
    authorized_keys: Sequence[str] = (),
    *,
    prefix: str = "host",
    sftp: bool = True,
    settings: Mapping[str, str] | None = None,
) -> list[SSHServer]:
    """Start ``count`` servers in parallel under ``root`` (a new temp dir when None).
    On any failure every server already started is stopped and the error re-raised."""
    base = root if root is not None else Path(tempfile.mkdtemp(prefix="runbook-sshd-"))
    servers = [
        SSHServer(
            base / f"{prefix}{index}",
            authorized_keys,
            name=f"{prefix}{index}",
            sftp=sftp,
            settings=settings,
        )
        for index in range(count)
    ]
    with ThreadPoolExecutor(max_workers=min(count, 16) or 1) as pool:
        futures = [pool.submit(server.start) for server in servers]
        errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        stop_servers(servers)
        raise errors[0]  # type: ignore[misc]
    return servers


def stop_servers(servers: Iterable[SSHServer]) -> None:
    for server in servers:
        server.stop()
