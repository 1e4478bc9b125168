"""Output of one command on one host: a bounded tail kept for templates and the audit
log, and live text handed on for display, masked, split on line boundaries.

Memory stays flat whatever the command prints: at most ``TAIL_BYTES`` (+ the longest
secret) of tail and one partial line (bounded too) per stream.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable

from .base import Stream

TAIL_BYTES = 64 * 1024
_MAX_PARTIAL = 64 * 1024

LiveCallback = Callable[[Stream, str], None]


class _StreamBuffer:
    __slots__ = ("carry", "decoder", "dropped", "tail")

    def __init__(self) -> None:
        self.tail = bytearray()
        self.dropped = False
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.carry = ""


class StepOutput:
    """An ``OutputSink`` for one step execution. ``mask`` hides secrets; ``live`` (if
    given) receives masked text made of whole lines, except when a line grows past
    64 KiB, which is then handed on in pieces."""

    def __init__(
        self,
        mask: Callable[[str], str],
        live: LiveCallback | None = None,
        keep: int = TAIL_BYTES,
        secret_margin: int = 0,
    ) -> None:
        self._mask = mask
        self._live = live
        self._keep = keep
        # keep a little more than the tail so a secret cut by the tail's start edge
        # can be recognised and dropped instead of leaking its end
        self._margin = secret_margin
        self._streams = {Stream.STDOUT: _StreamBuffer(), Stream.STDERR: _StreamBuffer()}
        self.total_bytes = 0

    def write(self, stream: Stream, data: bytes) -> None:
        buffer = self._streams[stream]
        self.total_bytes += len(data)
        tail = buffer.tail
        tail += data
        limit = self._keep + self._margin
        if len(tail) > limit:
            del tail[: len(tail) - limit]
            buffer.dropped = True
        if self._live is not None:
            self._feed_live(stream, buffer, buffer.decoder.decode(data))

    def _feed_live(self, stream: Stream, buffer: _StreamBuffer, text: str) -> None:
        assert self._live is not None
        text = buffer.carry + text
        cut = text.rfind("\n") + 1
        if cut == 0 and len(text) <= _MAX_PARTIAL:
            buffer.carry = text
            return
        if cut == 0:
            # an endless line: pass it on but hold back enough to mask a secret that
            # straddles the cut
            cut = len(text) - self._margin
        buffer.carry = text[cut:]
        if cut > 0:
            self._live(stream, self._mask(text[:cut]))

    def close(self) -> None:
        """Hand on whatever partial line is left."""
        if self._live is None:
            return
        for stream, buffer in self._streams.items():
            rest = buffer.carry + buffer.decoder.decode(b"", final=True)
            buffer.carry = ""
            if rest:
                self._live(stream, self._mask(rest) + "\n")

    def tail(self, stream: Stream) -> str:
        """The last ``keep`` bytes of a stream, decoded and masked."""
        buffer = self._streams[stream]
        text = self._mask(buffer.tail.decode("utf-8", errors="replace"))
        if buffer.dropped and self._margin:
            text = text[self._margin :]
        if len(text) > self._keep:
            text = text[-self._keep :]
        return text

    @property
    def truncated(self) -> bool:
        return any(b.dropped for b in self._streams.values())
