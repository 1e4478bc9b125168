"""A host over SSH: the ``Transport`` that puts the SSH modules together.

One connection per host for the whole run (``ssh_connect``), one channel per
command (``ssh_exec``), files over SFTP or, where sshd has no SFTP subsystem, over
exec channels (``ssh_files``; chosen once per connection and remembered), silent
connections noticed by a ``KeepaliveMonitor`` shared by every connection of a pool
(``keepalive``). It knows nothing about runbooks or steps.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..errors import ConnectError
from .base import ExecRequest, Transport
from .keepalive import KeepaliveMonitor
from .ssh_connect import SSHConnection
from .ssh_exec import CommandRunner, build_script
from .ssh_files import open_file_transfer

if TYPE_CHECKING:
    from collections.abc import Mapping

    import paramiko

    from ..spec.inventory import Host
    from .base import ExecResult, OutputSink
    from .files import FileTransfer


class SSHTransport(Transport):
    """One host over SSH. ``jump`` is the transport of the ProxyJump host, shared by
    every host behind it (``TransportPool`` does that); without it, a host with
    ``host.jump`` opens a jump connection of its own. ``passphrase`` unlocks an
    encrypted identity file. ``keepalive`` is the pool's monitor; without one the
    transport runs its own."""

    def __init__(
        self,
        host: Host,
        *,
        accept_new_host_keys: bool = False,
        passphrase: str | None = None,
        jump: SSHTransport | None = None,
        keepalive: KeepaliveMonitor | None = None,
    ) -> None:
        self.name = host.name
        self.host = host
        self._owns_monitor = keepalive is None
        self._monitor = keepalive or KeepaliveMonitor()
        self._owns_jump = jump is None and host.jump is not None
        if jump is None and host.jump is not None:  # not shared by a pool: our own
            jump = SSHTransport(
                host.jump,
                accept_new_host_keys=accept_new_host_keys,
                passphrase=passphrase,
                keepalive=self._monitor,
            )
        self._jump = jump
        self.connection: SSHConnection = SSHConnection(
            host,
            monitor=self._monitor,
            accept_new_host_keys=accept_new_host_keys,
            passphrase=passphrase,
            jump=None if jump is None else jump.connection,
        )
        self._runner = CommandRunner(self.connection)
        self._lock = threading.Lock()
        self._files: FileTransfer | None = None
        self._home: str | None = None
        self._made_for: paramiko.Transport | None = None  # the connection they fit

    @property
    def where(self) -> str:
        return self.connection.where

    def connect(self) -> None:
        self.connection.connect()

    def exec(
        self, request: ExecRequest, sink: OutputSink, cancel: threading.Event
    ) -> ExecResult:
        return self._runner.exec(request, sink, cancel)

    def file_transfer(self) -> FileTransfer:
        """SFTP, or exec channels when the server refuses the SFTP subsystem;
        asked once per connection."""
        self.connection.connect()
        transport = self.connection.active()
        with self._lock:
            self._forget_if_stale(transport)
            if self._files is None:
                self._files = open_file_transfer(
                    self.connection, self._runner, self._remote_home
                )
            return self._files

    def _forget_if_stale(self, transport: paramiko.Transport) -> None:
        """Drop what was learnt about an earlier connection (called locked)."""
        if self._made_for is not transport:
            if self._files is not None:
                self._files.close()
            self._files, self._home, self._made_for = None, None, transport

    def _remote_home(self) -> str:
        if self._home is None:
            script = build_script(ExecRequest(command='printf %s "$HOME"'))
            result = self._runner.run_script(script, timeout=self.host.connect_timeout)
            home = result.stdout.decode(errors="replace")
            if result.rc != 0 or not home.startswith("/"):
                raise ConnectError(
                    f"{self.where}: cannot find the remote home directory"
                )
            self._home = home
        return self._home

    def open_tunnel(self, address: str, port: int, deadline: float) -> paramiko.Channel:
        """A direct-tcpip channel through this host (it is someone's ProxyJump)."""
        return self.connection.open_tunnel(address, port, deadline)

    def describe(self) -> Mapping[str, str]:
        return self.connection.facts()

    def close(self) -> None:
        with self._lock:
            if self._files is not None:
                self._files.close()
            self._files, self._home, self._made_for = None, None, None
        self.connection.close()
        if self._owns_jump and self._jump is not None:
            self._jump.close()
        if self._owns_monitor:
            self._monitor.close()
