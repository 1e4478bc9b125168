"""Beneath paramiko, per connection: the socket wrapper that notes when bytes last
arrived (the keepalive monitor's evidence that the peer lives), the keepalive probe,
and the capture of ``exit-signal``.

paramiko has no public call that sends a want-reply request without blocking its
caller, and it drops the ``exit-signal`` channel request (``Channel._handle_request``
knows ``exit-status`` only), so two small hooks reach into it: ``_send_probe`` uses
``Transport._send_user_message`` (the call ``global_request`` itself makes) and
``capture_exit_signals`` gives each connection its own copy of the channel handler
table. The SSH tests exercise both (a silent partition is detected; a command that
kills its own shell reports the signal), so a paramiko release that changes these
internals fails loudly instead of quietly.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import time
import weakref

import paramiko
from paramiko.common import MSG_CHANNEL_REQUEST, cMSG_GLOBAL_REQUEST

NETWORK_ERRORS = (paramiko.SSHException, OSError, EOFError)

# paramiko logs refusals and dropped connections from its own threads; we report
# them ourselves, as errors with one-line causes
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class Wire:
    """The socket-like object paramiko talks through (a TCP socket, or a tunnel
    channel through the jump host), noting when bytes last arrived."""

    def __init__(self, inner: socket.socket | paramiko.Channel) -> None:
        self.inner = inner
        self.last_heard = time.monotonic()
        self._probed: float | None = None  # the first probe sent since last_heard

    def note_probe(self) -> None:
        now = time.monotonic()
        if self._probed is None or self._probed < self.last_heard:
            self._probed = now

    def unanswered_since(self) -> float | None:
        """When the oldest probe still unanswered went out (None: none is)."""
        probed = self._probed
        return probed if probed is not None and probed >= self.last_heard else None

    def recv(self, size: int) -> bytes:
        data: bytes = self.inner.recv(size)
        if data:
            self.last_heard = time.monotonic()
        return data

    def send(self, data: bytes) -> int:
        return int(self.inner.send(data))

    def settimeout(self, timeout: float | None) -> None:
        self.inner.settimeout(timeout)

    def close(self) -> None:
        if isinstance(self.inner, socket.socket):  # wake a reader blocked in recv
            with contextlib.suppress(OSError):
                self.inner.shutdown(socket.SHUT_RDWR)
        self.inner.close()

    def getpeername(self) -> object:
        return self.inner.getpeername()

    @property
    def _closed(self) -> bool:  # read by paramiko's Transport.stop_thread
        return bool(getattr(self.inner, "_closed", False))

    def input_pending(self) -> bool:
        if isinstance(self.inner, paramiko.Channel):
            return bool(self.inner.recv_ready())
        poller = select.poll()
        poller.register(self.inner.fileno(), select.POLLIN)
        return bool(poller.poll(0))


def start_probes(transport: paramiko.Transport, wire: Wire, interval: float) -> None:
    """After ``interval`` s without sending, the reader thread sends a probe."""
    proxy = weakref.proxy(transport)
    transport.packetizer.set_keepalive(interval, lambda: _send_probe(proxy, wire))


def _send_probe(transport: paramiko.Transport, wire: Wire) -> None:
    """A ``keepalive@openssh.com`` request the server must answer (want-reply);
    the answer itself is ignored, its arrival is what counts (``Wire``). Runs in
    paramiko's reader thread, so it never waits for a key exchange to finish."""
    try:
        if not transport.clear_to_send.is_set():
            return
        message = paramiko.Message()
        message.add_byte(cMSG_GLOBAL_REQUEST)
        message.add_string("keepalive@openssh.com")
        message.add_boolean(True)
        transport._send_user_message(message)
        wire.note_probe()
    except (*NETWORK_ERRORS, ReferenceError):
        return  # the connection is going away; the monitor will say why


def capture_exit_signals(
    transport: paramiko.Transport, signals: dict[int, str]
) -> None:
    """Note the ``exit-signal`` request (which paramiko would drop) by channel id."""
    table = dict(transport._channel_handler_table)
    handle_request = table[MSG_CHANNEL_REQUEST]

    def handle(channel: paramiko.Channel, message: paramiko.Message) -> None:
        start = message.packet.tell()
        if message.get_text() == "exit-signal":
            message.get_boolean()  # want-reply: never set for exit-signal
            signals[channel.get_id()] = message.get_text()
            return
        message.packet.seek(start)
        handle_request(channel, message)

    table[MSG_CHANNEL_REQUEST] = handle
    transport._channel_handler_table = table
