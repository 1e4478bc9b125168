"""Which transport serves a host, and the set of open connections of one run.

``open_transport`` picks ``LocalTransport`` or ``SSHTransport`` for a host.
``TransportPool`` hands out one transport per host for the whole run, connects them
lazily and in parallel (``connect_all``), shares one connection per jump host among
every host behind it and one keepalive thread among all connections, and closes
everything at the end. It does not retry: the executor decides that from the
error's ``retryable``.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..errors import TransportError
from .keepalive import KeepaliveMonitor
from .local import LocalTransport

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..spec.inventory import Host
    from .base import Transport
    from .ssh import SSHTransport


def open_transport(
    host: Host,
    *,
    accept_new_host_keys: bool = False,
    passphrase: str | None = None,
    jump: SSHTransport | None = None,
    keepalive: KeepaliveMonitor | None = None,
) -> Transport:
    """A transport for ``host``, not connected yet (``connect()`` opens it)."""
    if host.is_local:
        return LocalTransport(host.name)
    from .ssh import SSHTransport  # paramiko is imported only when a host needs it

    return SSHTransport(
        host,
        accept_new_host_keys=accept_new_host_keys,
        passphrase=passphrase,
        jump=jump,
        keepalive=keepalive,
    )


class TransportPool:
    """One transport per host name for a run. Thread-safe."""

    def __init__(
        self, *, accept_new_host_keys: bool = False, passphrase: str | None = None
    ) -> None:
        self._accept_new = accept_new_host_keys
        self._passphrase = passphrase
        self._lock = threading.Lock()
        self._transports: dict[str, Transport] = {}
        self._jumps: dict[Host, SSHTransport] = {}
        self._keepalive = KeepaliveMonitor()  # its thread starts with a connection

    def get(self, host: Host) -> Transport:
        """The host's transport (created on first use, not connected)."""
        with self._lock:
            transport = self._transports.get(host.name)
            if transport is None:
                jump = self._jump_for(host.jump) if host.jump is not None else None
                transport = open_transport(
                    host,
                    accept_new_host_keys=self._accept_new,
                    passphrase=self._passphrase,
                    jump=jump,
                    keepalive=self._keepalive,
                )
                self._transports[host.name] = transport
            return transport

    def _jump_for(self, host: Host) -> SSHTransport:
        """The shared transport of a jump host (called with the lock held)."""
        jump = self._jumps.get(host)
        if jump is None:
            from .ssh import SSHTransport

            outer = self._jump_for(host.jump) if host.jump is not None else None
            jump = SSHTransport(
                host,
                accept_new_host_keys=self._accept_new,
                passphrase=self._passphrase,
                jump=outer,
                keepalive=self._keepalive,
            )
            self._jumps[host] = jump
        return jump

    def connect(self, host: Host) -> Transport:
        """The host's transport, connected. Raises ``TransportError``."""
        transport = self.get(host)
        transport.connect()
        return transport

    def connect_all(
        self, hosts: Iterable[Host], forks: int = 20
    ) -> dict[str, TransportError]:
        """Connect every host, ``forks`` at a time. Returns the failures by host name
        (an empty dict when all connected); it never raises for one host."""
        hosts = list(hosts)
        failures: dict[str, TransportError] = {}
        if not hosts:
            return failures

        def connect_one(host: Host) -> None:
            try:
                self.connect(host)
            except TransportError as exc:
                failures[host.name] = exc

        with ThreadPoolExecutor(max_workers=max(1, min(forks, len(hosts)))) as executor:
            list(executor.map(connect_one, hosts))
        return failures

    def close(self) -> None:
        """Close every connection, targets before the jump hosts they go through."""
        with self._lock:
            transports = [*self._transports.values(), *reversed(self._jumps.values())]
            self._transports, self._jumps = {}, {}
        for transport in transports:
            transport.close()
        self._keepalive.close()

    def __enter__(self) -> TransportPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
