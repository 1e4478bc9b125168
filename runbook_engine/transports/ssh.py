"""Run commands on a host over SSH with paramiko: one connection per host for the
whole run, one channel per command.

Owns the socket (TCP_NODELAY: without it every round trip waits on Nagle and
delayed ACK, ~40 ms per command), the handshake within ``connect_timeout``, host key
trust (delegated to ``hostkeys``), key authentication (the configured identity file,
then the agent's keys; never a password), ProxyJump through another ``SSHTransport``,
keepalive probes that detect a silent partition, running commands, SFTP uploads, and
mapping every paramiko/socket exception, once, to ``errors.TransportError`` classes
with a one-line cause in our words. It knows nothing about runbooks or steps.

How a command runs: the exec request is always the same line, ``exec /bin/sh -s``,
so the login shell (bash, zsh, fish, csh...) never parses anything of ours. That
``/bin/sh`` reads a short script from the channel's stdin: print its pid, ``export``
the env values, ``cd``, then ``eval`` the command (POSIX sh, exactly as ``sh -c``
would run it, without a second shell process) with ``</dev/null``. Env values
therefore never appear on any command line nor depend on sshd's ``AcceptEnv``.
sshd starts each session in a new session and process group whose leader is that
``/bin/sh``, so a timeout or cancel kills the whole group with a second exec
(``kill -TERM -PID``, then ``-KILL``), not just the channel.
"""

from __future__ import annotations

import base64
import errno
import logging
import os
import posixpath
import re
import select
import shlex
import socket
import stat
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import paramiko
from paramiko.pkey import UnknownKeyType
from paramiko.ssh_exception import IncompatiblePeer, PartialAuthentication

from ..errors import (
    AuthError,
    ConnectError,
    ConnectionLostError,
    TransportError,
)
from .base import ExecRequest, ExecResult, OutputSink, Stream, Transport
from .hostkeys import TrustDecision, known_key_types, verify_host_key

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..spec.inventory import Host

# paramiko logs a dropped connection from its own thread; we report it ourselves
logging.getLogger("paramiko").addHandler(logging.NullHandler())

_BOOTSTRAP = "exec /bin/sh -s"
_READ_SIZE = 32 * 1024
_TICK = 0.1  # how often a waiting exec looks at cancel, deadline and the connection
_DRAIN_GRACE = 0.2  # keep reading after exit while a background child holds stdout
# "kill -SIG -PGID": dash has no "--" and reads "-s SIG -PGID" as options
_KILL_SCRIPT = (
    "p={pid}; if kill -0 -$p 2>/dev/null; then t=-$p; else t=$p; fi; "
    "kill -TERM $t 2>/dev/null || exit 0; n=0; "
    "while kill -0 $t 2>/dev/null && [ $n -lt 5 ]; do sleep 0.1; n=$((n+1)); done; "
    "kill -KILL $t 2>/dev/null; exit 0"
)
# key types that a known_hosts key type can be presented as (for HostKeyAlgorithms)
_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NETWORK_ERRORS = (paramiko.SSHException, OSError, EOFError)


def build_script(request: ExecRequest) -> str:
    """The script the remote ``/bin/sh -s`` reads: pid, env, cwd, then the command
    (or the argv) with an empty stdin."""
    bad = [name for name in request.env if not _ENV_NAME.match(name)]
    if bad:
        raise ValueError(f"not a valid environment variable name: {bad[0]!r}")
    lines = ["echo $$"]  # the pid of the session's process group leader
    lines += [f"export {k}={shlex.quote(v)}" for k, v in request.env.items()]
    lines.append('cd -- "${HOME:-.}" 2>/dev/null')
    if request.cwd:
        lines.append(f"cd -- {shlex.quote(request.cwd)} || exit 1")
    if request.argv is not None:
        lines.append(shlex.join(request.argv) + " </dev/null")
    else:
        lines.append(f"eval {shlex.quote(request.command or '')} </dev/null")
    lines.append("exit $?")
    return "\n".join(lines) + "\n"


class _Output:
    """Hands stdout/stderr chunks to the sink as they arrive, after taking the
    wrapper's pid line off the front of stdout."""

    def __init__(self, sink: OutputSink | None) -> None:
        self.sink = sink
        self.pid: int | None = None
        self._head = b""
        self._head_done = False
        self.stdout = bytearray()  # kept only when there is no sink (internal calls)

    def stdout_chunk(self, data: bytes) -> None:
        if not self._head_done:
            self._head += data
            if b"\n" not in self._head and len(self._head) < 32:
                return
            first, _, data = self._head.partition(b"\n")
            self._head_done = True
            if first.isdigit():
                self.pid = int(first)
            else:  # not our line (a broken /bin/sh?): it is output
                data = self._head
        self._emit(Stream.STDOUT, data)

    def _emit(self, stream: Stream, data: bytes) -> None:
        if not data:
            return
        if self.sink is not None:
            self.sink.write(stream, data)
        elif stream is Stream.STDOUT:
            self.stdout += data

    def stderr_chunk(self, data: bytes) -> None:
        self._emit(Stream.STDERR, data)


class SSHTransport(Transport):
    """One host over SSH. ``jump`` is the transport of the ProxyJump host, shared by
    every host behind it (``TransportPool`` does that); without it, a host with
    ``host.jump`` opens a jump connection of its own. ``passphrase`` unlocks an
    encrypted identity file."""

    def __init__(
        self,
        host: Host,
        *,
        accept_new_host_keys: bool = False,
        passphrase: str | None = None,
        jump: SSHTransport | None = None,
    ) -> None:
        self.name = host.name
        self.host = host
        self._accept_new = accept_new_host_keys
        self._passphrase = passphrase
        self._owns_jump = jump is None and host.jump is not None
        if jump is None and host.jump is not None:  # not shared by a pool: our own
            jump = SSHTransport(
                host.jump,
                accept_new_host_keys=accept_new_host_keys,
                passphrase=passphrase,
            )
        self._jump = jump
        self._lock = threading.Lock()
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._trust: TrustDecision | None = None
        self._home: str | None = None
        self._lost_reason: str | None = None
        self._watch_stop = threading.Event()

    @property
    def where(self) -> str:
        via = f" via {self._jump.host.name}" if self._jump else ""
        return (
            f"{self.name} ({self.host.user}@{self.host.address}:{self.host.port}{via})"
        )

    # -- connection ---------------------------------------------------------------
    def connect(self) -> None:
        with self._lock:
            if self._transport is not None and self._transport.is_active():
                return
            self._close_locked()
            deadline = time.monotonic() + self.host.connect_timeout
            sock = self._open_socket(deadline)
            transport = self._handshake(sock, deadline)
            try:
                self._trust = self._verify(transport)
                self._authenticate(transport)
            except BaseException:
                transport.close()
                raise
            self._transport, self._lost_reason = transport, None
            self._start_watchdog(transport)

    def _open_socket(self, deadline: float) -> socket.socket | paramiko.Channel:
        if self._jump is not None:
            return self._jump.open_tunnel(self.host.address, self.host.port, deadline)
        address, port = self.host.address, self.host.port
        try:
            infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ConnectError(
                f"{self.where}: cannot resolve host name {address!r}: {exc.strerror}"
            ) from exc
        failure: OSError | None = None
        for family, kind, proto, _name, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                failure = exc
                continue
            return sock
        assert failure is not None  # getaddrinfo never returns an empty list
        raise self._connect_failure(failure) from failure

    def _connect_failure(self, exc: OSError) -> ConnectError:
        if isinstance(exc, ConnectionRefusedError):
            return ConnectError(f"{self.where}: connection refused (is sshd running?)")
        if isinstance(exc, TimeoutError):
            return ConnectError(
                f"{self.where}: no answer within {self.host.connect_timeout:g}s "
                "(host down, unreachable or port filtered)"
            )
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return ConnectError(f"{self.where}: host unreachable ({exc.strerror})")
        return ConnectError(f"{self.where}: cannot connect: {exc.strerror or exc}")

    def _handshake(
        self, sock: socket.socket | paramiko.Channel, deadline: float
    ) -> paramiko.Transport:
        transport = paramiko.Transport(sock)
        remaining = max(deadline - time.monotonic(), 0.001)
        transport.banner_timeout = transport.handshake_timeout = remaining
        transport.auth_timeout = self.host.connect_timeout
        self._prefer_known_key_types(transport)
        try:
            transport.start_client(timeout=remaining)
        except _NETWORK_ERRORS as exc:
            transport.close()
            raise self._handshake_failure(exc) from exc
        if not (transport.is_active() and transport.initial_kex_done):
            # start_client returns silently when its own timeout runs out first
            banner = transport.remote_version
            transport.close()
            if not banner:
                raise self._handshake_failure(TimeoutError())
            raise ConnectError(
                f"{self.where}: SSH handshake not finished within "
                f"{self.host.connect_timeout:g}s"
            )
        return transport

    def _handshake_failure(self, exc: BaseException) -> ConnectError:
        text = str(exc).lower()
        if "banner" in text or "timed out" in text or isinstance(exc, TimeoutError):
            return ConnectError(
                f"{self.where}: no SSH banner within {self.host.connect_timeout:g}s "
                "(not an SSH server, or it hangs)"
            )
        if isinstance(exc, IncompatiblePeer):
            return ConnectError(f"{self.where}: no common SSH algorithms: {exc}")
        return ConnectError(
            f"{self.where}: SSH handshake failed: {exc or type(exc).__name__}"
        )

    def _prefer_known_key_types(self, transport: paramiko.Transport) -> None:
        known = known_key_types(
            self.host.known_hosts, self.host.address, self.host.port
        )
        options = transport.get_security_options()
        offered = list(options.key_types)
        first = [a for k in known for a in _ALGORITHMS.get(k, (k,)) if a in offered]
        options.key_types = tuple(dict.fromkeys([*first, *offered]))

    def _verify(self, transport: paramiko.Transport) -> TrustDecision:
        key = transport.get_remote_server_key()
        return verify_host_key(
            address=self.host.address,
            port=self.host.port,
            blob=key.asbytes(),
            known_hosts=self.host.known_hosts,
            pin=self.host.host_key,
            accept_new=self._accept_new,
        )

    def _authenticate(self, transport: paramiko.Transport) -> None:
        """Offer the identity file alone when one is configured (like OpenSSH's
        IdentitiesOnly, so an agent full of keys cannot trip MaxAuthTries; an
        encrypted one may be used through the agent), else the agent's keys."""
        user = self.host.user
        agent = paramiko.Agent()
        try:
            keys = self._identity(agent) if self.host.identity_file else []
            keys = keys or _agent_keys(agent)
            if not keys:
                raise AuthError(
                    f"{self.where}: no key to offer: set identity_file in the "
                    "inventory or load a key into ssh-agent"
                )
            for key in keys:
                if self._try_key(transport, user, key):
                    return
        finally:
            agent.close()
        offered = self.host.identity_file or f"{len(keys)} agent key(s)"
        raise AuthError(
            f"{self.where}: authentication rejected for user {user!r} "
            f"(offered {offered}; passwords are never offered)"
        )

    def _try_key(
        self, transport: paramiko.Transport, user: str, key: paramiko.PKey
    ) -> bool:
        try:
            transport.auth_publickey(user, key)
        except paramiko.BadAuthenticationType as exc:
            raise AuthError(
                f"{self.where}: the server does not accept keys (it allows: "
                f"{', '.join(exc.allowed_types)}); passwords are never offered"
            ) from exc
        except PartialAuthentication as exc:
            raise AuthError(
                f"{self.where}: the key was accepted but the server wants more "
                f"({', '.join(exc.allowed_types)}), which runbook never offers"
            ) from exc
        except paramiko.AuthenticationException:
            return False
        except _NETWORK_ERRORS as exc:  # typically "Too many authentication failures"
            raise AuthError(
                f"{self.where}: the server closed the connection during "
                f"authentication ({self._cause(exc)})"
            ) from exc
        return bool(transport.is_authenticated())

    def _identity(self, agent: paramiko.Agent) -> list[paramiko.PKey]:
        path = self.host.identity_file
        if not path:
            return []
        try:
            # positional: paramiko 5 renamed the keyword (passphrase -> password)
            return [paramiko.PKey.from_path(path, self._secret())]
        except FileNotFoundError as exc:
            raise AuthError(
                f"{self.where}: identity file {path} does not exist"
            ) from exc
        except (paramiko.PasswordRequiredException, TypeError) as exc:
            if self._passphrase is not None:  # a passphrase for a plain key
                raise AuthError(
                    f"{self.where}: cannot use identity file {path}: {exc}"
                ) from exc
            in_agent = _agent_copy(agent, path)
            if in_agent is not None:
                return [in_agent]
            raise AuthError(
                f"{self.where}: identity file {path} is encrypted and no "
                "passphrase was given"
            ) from exc
        except (paramiko.SSHException, UnknownKeyType, ValueError, OSError) as exc:
            hint = " (wrong passphrase?)" if self._passphrase else ""
            raise AuthError(
                f"{self.where}: cannot use identity file {path}{hint}: {exc}"
            ) from exc

    def _secret(self) -> bytes | None:
        return None if self._passphrase is None else self._passphrase.encode()

    def open_tunnel(self, address: str, port: int, deadline: float) -> paramiko.Channel:
        """A direct-tcpip channel to ``address:port`` through this host (ProxyJump)."""
        self.connect()
        transport = self._active()
        timeout = max(deadline - time.monotonic(), 0.001)
        try:
            return transport.open_channel(
                "direct-tcpip", (address, port), ("127.0.0.1", 0), timeout=timeout
            )
        except paramiko.ChannelException as exc:
            raise ConnectError(
                f"jump host {self.where} cannot reach {address}:{port}: {exc.text}"
            ) from exc
        except _NETWORK_ERRORS as exc:
            raise ConnectError(
                f"jump host {self.where} did not open a tunnel to "
                f"{address}:{port}: {exc}"
            ) from exc

    def _active(self) -> paramiko.Transport:
        transport = self._transport
        if transport is None or not transport.is_active():
            raise ConnectError(f"{self.where}: not connected")
        return transport

    # -- keepalive ----------------------------------------------------------------
    def _start_watchdog(self, transport: paramiko.Transport) -> None:
        interval = self.host.keepalive
        if interval <= 0:
            return
        self._watch_stop = threading.Event()
        threading.Thread(
            target=self._watch,
            args=(transport, interval, self._watch_stop),
            name=f"ssh-keepalive-{self.name}",
            daemon=True,
        ).start()

    def _watch(
        self, transport: paramiko.Transport, interval: float, stop: threading.Event
    ) -> None:
        """Probe every ``interval``; no answer within two more intervals = lost."""
        while not stop.wait(interval) and transport.is_active():
            answered = threading.Event()
            threading.Thread(
                target=_probe, args=(transport, answered), daemon=True
            ).start()
            if not answered.wait(2 * interval) and not stop.is_set():
                self._lost_reason = (
                    f"no answer to SSH keepalives for {3 * interval:g}s (network "
                    "partition or the host hangs)"
                )
                transport.close()
                return

    # -- commands -----------------------------------------------------------------
    def exec(
        self, request: ExecRequest, sink: OutputSink, cancel: threading.Event
    ) -> ExecResult:
        channel = self._start(build_script(request))
        try:
            return self._supervise(channel, request.timeout, _Output(sink), cancel)
        finally:
            channel.close()

    def _start(self, script: str) -> paramiko.Channel:
        """Open a channel, send the bootstrap and the script. Nothing of the command
        can run before the script's end arrives, so failures here are retryable."""
        self.connect()
        transport = self._active()
        try:
            channel = transport.open_session(timeout=self.host.connect_timeout)
            channel.exec_command(_BOOTSTRAP)
            channel.sendall(script.encode())
            channel.shutdown_write()
        except paramiko.ChannelException as exc:
            raise ConnectError(
                f"{self.where}: the server refused a session: {exc.text}"
            ) from exc
        except _NETWORK_ERRORS as exc:
            raise ConnectError(
                f"{self.where}: connection dropped before the command started: "
                f"{self._cause(exc)}"
            ) from exc
        return channel

    def _supervise(
        self,
        channel: paramiko.Channel,
        timeout: float | None,
        output: _Output,
        cancel: threading.Event,
    ) -> ExecResult:
        waiter = select.poll()  # poll, not select: fds may exceed 1024 on big fleets
        waiter.register(channel.fileno(), select.POLLIN)
        deadline = None if timeout is None else time.monotonic() + timeout
        exited_at: float | None = None
        while True:
            self._drain(channel, output)
            if channel.closed or channel.eof_received:
                break
            now = time.monotonic()
            if exited_at is None and channel.exit_status_ready():
                exited_at = now
            if exited_at is not None and now >= exited_at + _DRAIN_GRACE:
                break  # a background child keeps stdout open: stop listening
            if cancel.is_set():
                self._kill(channel, output.pid)
                return ExecResult(rc=None, interrupted=True)
            if deadline is not None and now >= deadline:
                self._kill(channel, output.pid)
                return ExecResult(rc=None, timed_out=True)
            wait = _TICK if deadline is None else min(_TICK, max(deadline - now, 0))
            waiter.poll(wait * 1000)
        return self._outcome(channel, output)

    def _drain(self, channel: paramiko.Channel, output: _Output) -> None:
        try:
            while channel.recv_ready():
                output.stdout_chunk(channel.recv(_READ_SIZE))
            while channel.recv_stderr_ready():
                output.stderr_chunk(channel.recv_stderr(_READ_SIZE))
        except _NETWORK_ERRORS as exc:
            self._lost(exc)

    def _outcome(self, channel: paramiko.Channel, output: _Output) -> ExecResult:
        channel.status_event.wait(_DRAIN_GRACE * 5)
        self._drain(channel, output)
        transport = self._transport
        if channel.exit_status == -1 and (
            transport is None or not transport.is_active()
        ):
            self._lost(None)
        # -1: the wrapper itself died by a signal (paramiko drops exit-signal)
        return ExecResult(rc=channel.exit_status)

    def _lost(self, exc: BaseException | None) -> NoReturn:
        raise ConnectionLostError(
            f"{self.where}: connection lost while the command ran "
            f"({self._cause(exc)}); its outcome is unknown"
        ) from exc

    def _cause(self, exc: BaseException | None) -> str:
        if self._lost_reason:
            return self._lost_reason
        transport = self._transport
        inner = exc or (transport.get_exception() if transport is not None else None)
        if isinstance(inner, EOFError) or inner is None:
            return "the server closed the connection"
        return str(inner) or type(inner).__name__

    def _kill(self, channel: paramiko.Channel, pid: int | None) -> None:
        """Kill the command's process group on the host, then stop listening."""
        transport = self._transport
        if pid is not None and transport is not None and transport.is_active():
            try:
                self._run_internal(_KILL_SCRIPT.format(pid=pid), timeout=5.0)
            except TransportError:
                pass  # the connection is gone: the session's processes get SIGHUP
            channel.status_event.wait(1.0)
        channel.close()

    def _run_internal(self, command: str, timeout: float) -> tuple[int | None, bytes]:
        channel = self._start(build_script(ExecRequest(command=command)))
        try:
            output = _Output(None)
            result = self._supervise(channel, timeout, output, threading.Event())
            return result.rc, bytes(output.stdout)
        finally:
            channel.close()

    # -- files --------------------------------------------------------------------
    def write_file(self, path: str, data: bytes, mode: int | None) -> bool:
        """Upload to a temp name beside ``path``, chmod, then rename into place.
        Remote filesystem errors propagate as ``OSError`` naming the path."""
        target = (
            path if posixpath.isabs(path) else posixpath.join(self._remote_home(), path)
        )
        sftp = self._sftp_client()
        try:
            return _write(sftp, target, data, mode)
        except _NETWORK_ERRORS as exc:
            transport = self._transport
            if (
                isinstance(exc, OSError)
                and exc.errno
                and transport
                and transport.is_active()
            ):
                raise OSError(
                    exc.errno, f"{self.name}: {target}: {exc.strerror}"
                ) from exc
            raise ConnectionLostError(
                f"{self.where}: connection lost while writing {target} "
                f"({self._cause(exc)}); {target} is unchanged"
            ) from exc

    def _sftp_client(self) -> paramiko.SFTPClient:
        self.connect()
        transport = self._active()
        with self._lock:
            if self._sftp is None:  # reset whenever the connection is replaced
                try:
                    self._sftp = paramiko.SFTPClient.from_transport(transport)
                except _NETWORK_ERRORS as exc:
                    raise ConnectError(
                        f"{self.where}: cannot start SFTP: {exc}"
                    ) from exc
            assert self._sftp is not None
            return self._sftp

    def _remote_home(self) -> str:
        if self._home is None:
            rc, out = self._run_internal(
                'printf %s "$HOME"', timeout=self.host.connect_timeout
            )
            home = out.decode(errors="replace")
            if rc != 0 or not home.startswith("/"):
                raise ConnectError(
                    f"{self.where}: cannot find the remote home directory"
                )
            self._home = home
        return self._home

    # -- audit / lifecycle ----------------------------------------------------------
    def describe(self) -> Mapping[str, str]:
        facts = {
            "connection": "ssh",
            "address": f"{self.host.address}:{self.host.port}",
            "user": self.host.user,
        }
        if self._jump is not None:
            facts["via"] = self._jump.host.name
        if self._trust is not None:
            facts["host_key"] = self._trust.fingerprint
            facts["host_key_type"] = self._trust.key_type
            facts["host_key_status"] = self._trust.status
            if self._trust.warnings:
                facts["known_hosts_warnings"] = "; ".join(self._trust.warnings)
        return facts

    def close(self) -> None:
        with self._lock:
            self._close_locked()
        if self._owns_jump and self._jump is not None:
            self._jump.close()

    def _close_locked(self) -> None:
        self._watch_stop.set()
        if self._sftp is not None:
            try:
                self._sftp.close()
            except _NETWORK_ERRORS:
                pass
            self._sftp = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self._home = None


def _agent_keys(agent: paramiko.Agent) -> list[paramiko.PKey]:
    try:
        return list(agent.get_keys())
    except _NETWORK_ERRORS:
        return []  # no usable agent: only the identity file is offered


def _agent_copy(agent: paramiko.Agent, path: str) -> paramiko.PKey | None:
    """The agent's key whose public half is ``path.pub``, if the agent holds it."""
    try:
        public = base64.b64decode(Path(f"{path}.pub").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return next((k for k in _agent_keys(agent) if k.asbytes() == public), None)


def _probe(transport: paramiko.Transport, answered: threading.Event) -> None:
    try:
        transport.global_request("keepalive@openssh.com", wait=True)
    except _NETWORK_ERRORS:
        return
    answered.set()


def _write(
    sftp: paramiko.SFTPClient, target: str, data: bytes, mode: int | None
) -> bool:
    current_mode = _current_mode(sftp, target, data)
    if current_mode is not None and current_mode[1]:  # same content
        if mode is None or mode == current_mode[0]:
            return False
        sftp.chmod(target, mode)
        return True
    directory, name = posixpath.split(target)
    temp = posixpath.join(directory, f".{name}.runbook-{os.urandom(4).hex()}.tmp")
    try:
        with sftp.open(temp, "wx") as handle:
            handle.chmod(0o600)  # before any byte lands: the content may be secret
            handle.set_pipelined(True)
            handle.write(data)
        final = (
            mode if mode is not None else (current_mode[0] if current_mode else 0o644)
        )
        sftp.chmod(temp, final)
        sftp.posix_rename(temp, target)
    except BaseException:
        try:
            sftp.remove(temp)
        except _NETWORK_ERRORS:
            pass
        raise
    return True


def _current_mode(
    sftp: paramiko.SFTPClient, target: str, data: bytes
) -> tuple[int, bool] | None:
    """(mode, content equal) of the existing file, or None when there is none."""
    try:
        attrs = sftp.stat(target)
    except FileNotFoundError:
        return None
    mode = stat.S_IMODE(attrs.st_mode or 0)
    if not stat.S_ISREG(attrs.st_mode or 0) or attrs.st_size != len(data):
        return mode, False
    with sftp.open(target, "rb") as handle:
        handle.prefetch(len(data))
        return mode, handle.read() == data
