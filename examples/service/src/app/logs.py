"""Structured logs: one JSON object per line on stderr.

Every line has `ts` (UTC, milliseconds), `level` and `msg`; a log call adds its own
fields with `extra={"fields": {...}}` (api.py adds the request's `request_id`,
`method`, `route`, `status`, `duration_ms`, `user_id`). An exception adds `error`
(its type and message) and `traceback`. What goes into a line is chosen by the
caller: never a token, a password, a secret or a raw request line.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import traceback
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import TextIO

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def utc_stamp(moment: datetime | None = None) -> str:
    """2026-01-01T12:00:00.123Z"""
    moment = moment or datetime.now(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def request_id_from(incoming: str) -> tuple[str, bool]:
    """(the id to use, whether the incoming one was refused).

    An incoming X-Request-ID is kept when it is 1-64 characters of letters, digits,
    '.', '_' or '-' (so it is safe in a log line and a header); otherwise, or when
    there is none, a new random id is made."""
    if _REQUEST_ID.match(incoming):
        return incoming, False
    return secrets.token_hex(8), incoming != ""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": utc_stamp(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            entry["error"] = f"{type(error).__name__}: {error}"
            entry["traceback"] = "".join(traceback.format_exception(error)).rstrip()
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure(stream: TextIO) -> None:
    """Send every `service*` logger's records to `stream` as JSON lines."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("service")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
