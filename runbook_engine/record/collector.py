"""Keeps every event of the current run as a record, in order: the source for
``--output json`` and for reports. Events arrive masked (``MultiSink``); output tails
are cut as in the audit log, so a report of a live run and one of the same run read
back from the log agree."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .auditsink import output_tail

if TYPE_CHECKING:
    from .events import Event


class Collector:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        record: dict[str, Any] = {"event": event.name, **event.record()}
        for key in ("stdout_tail", "stderr_tail"):
            if record.get(key):
                record[key] = output_tail(record[key])
        with self._lock:
            self.records.append(record)

    def barrier(self) -> None:
        pass
