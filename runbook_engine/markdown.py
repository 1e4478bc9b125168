"""Text for GitHub-flavoured Markdown, one rule for every page we write (runbook
docs, the plan posted on a pull request, Markdown reports).

Two kinds of text go into a page:

- ``plain``: what must show exactly as written (ids, commands, patterns, defaults,
  output). Markdown reads ``\\ ` * _ [ ] ~ ! | $`` as escapes, code, emphasis, links,
  strike-through, table cells or math even between ``<code>`` tags (raw HTML does not
  stop inline parsing), and ``\\.`` would lose its backslash: those characters are
  written as numeric entities, ``< > &`` as named ones. ``code`` wraps it in
  ``<code>`` (not backticks: a code span would show the entities and ``<br>``).
- ``prose``: what an author wrote as Markdown (descriptions, names): kept as
  Markdown, made safe for one table cell. Outside its code spans ``< > &`` are
  escaped (a bare ``<`` would start an HTML tag); inside them nothing is, because a
  code span shows entities literally. Pipes are ``\\|`` in both, as GFM tables want.

Both put a multi-line value on one table row (``<br>`` between lines).
"""

from __future__ import annotations

import html
import re

_MARKUP = str.maketrans({c: f"&#{ord(c)};" for c in "\\`*_[]~!|$"})
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)


def plain(text: object) -> str:
    """``text`` shown as written, on one table row."""
    value = html.escape(str(text), quote=False).translate(_MARKUP)
    return value.replace("\r", "").replace("\n", "<br>")


def code(text: object) -> str:
    """``text`` as inline code, shown as written; empty text stays empty."""
    return f"<code>{plain(text)}</code>" if str(text) else ""


def prose(text: object, *, cell: bool = True) -> str:
    """Author-written Markdown, safe in one table cell (``cell=False``: a block of
    its own, lines and pipes kept)."""
    parts = []
    at = 0
    source = str(text).replace("\r", "")
    for span in _CODE_SPAN.finditer(source):
        parts.append(_prose_text(source[at : span.start()], cell))
        inside = span.group(0)
        if cell:
            inside = inside.replace("\n", " ").replace("|", "\\|")
        parts.append(inside)
        at = span.end()
    parts.append(_prose_text(source[at:], cell))
    return "".join(parts)


def _prose_text(text: str, cell: bool) -> str:
    value = html.escape(text, quote=False)
    if cell:
        value = value.replace("|", "\\|").replace("\n", "<br>")
    return value
