"""Turns events into audit records and makes them durable at each barrier.

Records are buffered between barriers and appended at once (the file backend: one
write and one fsync; the database: one commit), so a step's ``step.finished`` shares
its fsync with the next ``step.started``; the executor calls ``barrier()`` before
every action starts and at the end of the run.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .audit import utc_now

if TYPE_CHECKING:
    from .audit import AuditWriter
    from .events import Event
    from .forward import Forwarder

AUDIT_TAIL_LINES = 20
AUDIT_TAIL_CHARS = 4096


class AuditSink:
    """``forwarder``: where each record also goes once it is durable (syslog)."""

    def __init__(
        self, log: AuditWriter, *, run_id: str, forwarder: Forwarder | None = None
    ) -> None:
        self.log = log
        self.run_id = run_id
        self.forwarder = forwarder
        self._seq = 0
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        fields = event.record()
        for key in ("stdout_tail", "stderr_tail"):
            if fields.get(key):
                fields[key] = output_tail(fields[key])
        with self._lock:
            self._seq += 1
            record = {
                "ts": utc_now(),
                "run_id": self.run_id,
                "seq": self._seq,
                "event": event.name,
            }
            record.update(fields)
            self._pending.append(record)

    def barrier(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            if pending:
                written = self.log.append(pending)
                if self.forwarder is not None:
                    self.forwarder.send(written)


def output_tail(text: str) -> str:
    """The output a record keeps: the last 20 lines, at most 4 KiB."""
    lines = text.splitlines()[-AUDIT_TAIL_LINES:]
    joined = "\n".join(lines)
    return joined[-AUDIT_TAIL_CHARS:]
