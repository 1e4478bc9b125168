"""Markdown rendered the way GitHub shows it (CommonMark with GFM tables and
strike-through, by markdown-it-py), read back as what a reader sees: the text of
every table cell and list item, and the tags each one holds."""

from __future__ import annotations

from html.parser import HTMLParser

from markdown_it import MarkdownIt

_GFM = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def render(markdown: str) -> str:
    return _GFM.render(markdown)


class Page(HTMLParser):
    """``tables``: every <table> as rows of cell texts (``<br>`` as a newline);
    ``tags``: the tags inside each cell, in the same shape; ``items``: the text of
    every list item; ``text``: all visible text."""

    def __init__(self, markdown: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.tags: list[list[list[list[str]]]] = []
        self.items: list[str] = []
        self._cell: list[str] | None = None
        self._cell_tags: list[str] = []
        self._item: list[str] | None = None
        self._text: list[str] = []
        self.feed(render(markdown))
        self.text = "".join(self._text)

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag == "table":
            self.tables.append([])
            self.tags.append([])
        elif tag == "tr":
            self.tables[-1].append([])
            self.tags[-1].append([])
        elif tag in ("td", "th"):
            self._cell, self._cell_tags = [], []
        elif tag == "li":
            self._item = []
        elif self._cell is not None:
            self._cell_tags.append(tag)
            if tag == "br":
                self._cell.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self.tags[-1][-1].append(self._cell_tags)
            self._cell = None
        elif tag == "li" and self._item is not None:
            self.items.append("".join(self._item))
            self._item = None

    def handle_data(self, data: str) -> None:
        self._text.append(data)
        for part in (self._cell, self._item):
            if part is not None:
                part.append(data)

    def row(self, first: str) -> list[str]:
        """The table row whose first cell reads ``first``."""
        for table in self.tables:
            for row in table:
                if row and row[0] == first:
                    return row
        raise AssertionError(f"no table row starts with {first!r}")
