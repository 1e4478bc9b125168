"""One SSH connection to one host (paramiko): everything up to a usable session.

Owns the socket (TCP_NODELAY: without it every round trip waits on Nagle and
delayed ACK, ~40 ms per command), the ProxyJump tunnel through another connection,
the handshake within ``connect_timeout``, host key trust (delegated to
``hostkeys``), key authentication (``ssh_auth``), keepalives, opening session
channels (retrying refusals that happen before anything ran), and mapping the
connection's paramiko/socket exceptions, once, to ``errors`` classes with a one-line
cause. It runs no command and moves no file.

Keepalives: after ``keepalive`` seconds without sending, paramiko's reader thread
sends a probe the server must answer and the socket wrapper notes when bytes last
arrived (both in ``ssh_wire``); the pool's ``KeepaliveMonitor`` thread declares the
connection lost after three silent intervals.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from typing import TYPE_CHECKING

import paramiko
from paramiko.ssh_exception import IncompatiblePeer

from ..errors import ConnectError
from .hostkeys import TrustDecision, known_key_types, verify_host_key
from .keepalive import Watched
from .ssh_auth import KeyAuth
from .ssh_wire import NETWORK_ERRORS, Wire, capture_exit_signals, start_probes

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ..spec.inventory import Host
    from .keepalive import KeepaliveMonitor

# key types that a known_hosts key type can be presented as (for HostKeyAlgorithms)
_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}
# waits between attempts to open a session the server refused (MaxSessions,
# "administratively prohibited", an open that timed out): 3.15 s in all
SESSION_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
# paramiko's reader thread wakes from recv every 0.1 s to look for work of its own
# (keepalives, being closed): 5,000 wake-ups a second for 500 hosts, each needing
# the GIL. Once connected it wakes every second, or a quarter of the keepalive
# interval when shorter so probes still go out on time; a close wakes it at once.
_READER_WAKE = 1.0


def _reader_wake(keepalive: float) -> float:
    return min(_READER_WAKE, keepalive / 4) if keepalive > 0 else _READER_WAKE


class SSHConnection(Watched):
    """``jump`` is the connection of the ProxyJump host (shared by every host behind
    it when a pool made it). Thread-safe; ``connect`` is idempotent."""

    def __init__(
        self,
        host: Host,
        *,
        monitor: KeepaliveMonitor,
        accept_new_host_keys: bool = False,
        passphrase: str | None = None,
        jump: SSHConnection | None = None,
    ) -> None:
        self.host = host
        self.jump = jump
        self._monitor = monitor
        self._accept_new = accept_new_host_keys
        self._auth = KeyAuth(host, passphrase, self.where)
        self._lock = threading.Lock()
        self.transport: paramiko.Transport | None = None
        self._wire: Wire | None = None
        self.trust: TrustDecision | None = None
        self._lost_reason: str | None = None
        self._exit_signals: dict[int, str] = {}

    @property
    def where(self) -> str:
        via = f" via {self.jump.host.name}" if self.jump else ""
        host = self.host
        return f"{host.name} ({host.user}@{host.address}:{host.port}{via})"

    # -- set-up -------------------------------------------------------------------
    def connect(self) -> None:
        with self._lock:
            if self.transport is not None and self.transport.is_active():
                return
            self._close_locked()
            deadline = time.monotonic() + self.host.connect_timeout
            wire = Wire(self._open_socket(deadline))
            transport = self._handshake(wire, deadline)
            try:
                self.trust = self._verify(transport)
                self._auth.authenticate(transport)
            except BaseException:
                transport.close()
                raise
            capture_exit_signals(transport, self._exit_signals)
            wire.settimeout(_reader_wake(self.host.keepalive))
            self.transport, self._wire, self._lost_reason = transport, wire, None
            if self.host.keepalive > 0:
                start_probes(transport, wire, self.host.keepalive)
                self._monitor.watch(self, self.host.keepalive)

    def _open_socket(self, deadline: float) -> socket.socket | paramiko.Channel:
        if self.jump is not None:
            return self.jump.open_tunnel(self.host.address, self.host.port, deadline)
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

    def _handshake(self, wire: Wire, deadline: float) -> paramiko.Transport:
        transport = paramiko.Transport(wire)
        remaining = max(deadline - time.monotonic(), 0.001)
        transport.banner_timeout = transport.handshake_timeout = remaining
        transport.auth_timeout = self.host.connect_timeout
        self._prefer_known_key_types(transport)
        try:
            transport.start_client(timeout=remaining)
        except NETWORK_ERRORS as exc:
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

    def open_tunnel(self, address: str, port: int, deadline: float) -> paramiko.Channel:
        """A direct-tcpip channel to ``address:port`` through this host (ProxyJump)."""
        self.connect()
        transport = self.active()
        timeout = max(deadline - time.monotonic(), 0.001)
        try:
            return transport.open_channel(
                "direct-tcpip", (address, port), ("127.0.0.1", 0), timeout=timeout
            )
        except paramiko.ChannelException as exc:
            raise ConnectError(
                f"jump host {self.where} cannot reach {address}:{port}: {exc.text}"
            ) from exc
        except NETWORK_ERRORS as exc:
            raise ConnectError(
                f"jump host {self.where} did not open a tunnel to "
                f"{address}:{port}: {exc}"
            ) from exc

    # -- sessions -------------------------------------------------------------------
    def open_session(
        self,
        request: Callable[[paramiko.Channel], object] | None = None,
        cancel: threading.Event | None = None,
    ) -> paramiko.Channel:
        """A new session channel on which ``request`` (the exec request) succeeded.
        Refusals before anything ran (the open refused, e.g. MaxSessions or
        "administratively prohibited", an open that timed out, the request refused)
        are retried after ``SESSION_RETRY_DELAYS``; then ``ConnectError`` with the
        server's words. A dropped connection is ``ConnectError`` at once."""
        started, attempts = time.monotonic(), 0
        for delay in (*SESSION_RETRY_DELAYS, None):
            outcome = self._try_session(request)
            attempts += 1
            if isinstance(outcome, paramiko.Channel):
                return outcome
            if delay is None or (cancel is not None and cancel.wait(delay)):
                break
            if cancel is None:
                time.sleep(delay)
        raise ConnectError(
            f"{self.where}: {outcome} ({attempts} attempts in "
            f"{time.monotonic() - started:.1f}s)"
        )

    def _try_session(
        self, request: Callable[[paramiko.Channel], object] | None
    ) -> paramiko.Channel | str:
        """The channel, or why the server refused it (raises when connection died)."""
        transport = self.active()
        try:
            channel = transport.open_session(timeout=self.host.connect_timeout)
        except paramiko.ChannelException as exc:
            return f"the server refused a session: {exc.text}"
        except NETWORK_ERRORS as exc:
            return self._not_started(transport, exc, "no session opened")
        try:
            if request is not None:
                request(channel)
        except NETWORK_ERRORS as exc:
            channel.close()
            return self._not_started(transport, exc, "the server refused the command")
        return channel

    def _not_started(
        self, transport: paramiko.Transport, exc: BaseException, what: str
    ) -> str:
        if not transport.is_active():
            raise ConnectError(
                f"{self.where}: connection dropped before the command started: "
                f"{self.cause(exc)}"
            ) from exc
        return f"{what}: {exc or type(exc).__name__}"

    def exit_signal(self, channel: paramiko.Channel) -> str | None:
        """The signal name (``TERM``) the server reported for ``channel``, if any."""
        return self._exit_signals.pop(channel.get_id(), None)

    def active(self) -> paramiko.Transport:
        transport = self.transport
        if transport is None or not transport.is_active():
            raise ConnectError(f"{self.where}: not connected")
        return transport

    def cause(self, exc: BaseException | None) -> str:
        """Why the connection failed, in one line."""
        if self._lost_reason:
            return self._lost_reason
        transport = self.transport
        inner = exc or (transport.get_exception() if transport is not None else None)
        if isinstance(inner, EOFError) or inner is None:
            return "the server closed the connection"
        return str(inner) or type(inner).__name__

    # -- what the keepalive monitor reads (keepalive.Watched) -----------------------
    def is_open(self) -> bool:
        transport = self.transport
        return transport is not None and transport.is_active()

    def last_heard(self) -> float:
        wire = self._wire
        return time.monotonic() if wire is None else wire.last_heard

    def unanswered_since(self) -> float | None:
        wire = self._wire
        return None if wire is None else wire.unanswered_since()

    def input_pending(self) -> bool:
        wire = self._wire
        try:
            return wire is not None and wire.input_pending()
        except (OSError, ValueError):  # closed meanwhile
            return False

    def declare_lost(self, reason: str) -> None:
        transport = self.transport
        if transport is not None:
            self._lost_reason = reason
            transport.close()

    # -- audit / lifecycle ----------------------------------------------------------
    def facts(self) -> Mapping[str, str]:
        facts = {
            "connection": "ssh",
            "address": f"{self.host.address}:{self.host.port}",
            "user": self.host.user,
        }
        if self.jump is not None:
            facts["via"] = self.jump.host.name
        if self.trust is not None:
            facts["host_key"] = self.trust.fingerprint
            facts["host_key_type"] = self.trust.key_type
            facts["host_key_status"] = self.trust.status
            if self.trust.warnings:
                facts["known_hosts_warnings"] = "; ".join(self.trust.warnings)
        return facts

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        self._monitor.unwatch(self)
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        self._wire = None
        self._exit_signals.clear()
