"""`runbook plan --format markdown` renders as one GitHub table: checked with a
CommonMark renderer with GFM tables (markdown-it-py), the way a pull request or a
job summary shows it."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

pytestmark = pytest.mark.e2e

RUNBOOK = r"""
version: 1
name: planned
params:
  version: {type: string, default: '1.2.3'}
steps:
  - id: build
    run: |
      make all | tee build.log
      test -s build.log && echo "*built* _{{ params.version }}_"
    undo: rm -f build.log
  - id: shout
    when: params.version != ''
    argv: [echo, "a|b", "`tick`", "<b>bold</b>", 'back\slash', "**star**"]
  - id: wait
    sleep: 1s
"""


class _Tables(HTMLParser):
    """Every <table> as rows of cells; a cell is its text and its tags."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.tags: list[list[list[list[str]]]] = []
        self._cell: list[str] | None = None
        self._cell_tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag == "table":
            self.tables.append([])
            self.tags.append([])
        elif tag == "tr":
            self.tables[-1].append([])
            self.tags[-1].append([])
        elif tag in ("td", "th"):
            self._cell, self._cell_tags = [], []
        elif self._cell is not None:
            self._cell_tags.append(tag)
            if tag == "br":
                self._cell.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self.tags[-1][-1].append(self._cell_tags)
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_plan_markdown_is_one_github_table_with_a_cell_per_field(
    runbook_cli, write_runbook
):
    rb = write_runbook(RUNBOOK)
    result = runbook_cli("plan", str(rb), "--format", "markdown")
    assert result.code == 0, result.output
    html = MarkdownIt("commonmark").enable("table").render(result.stdout)
    parser = _Tables()
    parser.feed(html)
    (table,) = parser.tables
    header, *rows = table
    assert header == ["phase", "step", "where", "action", "undo"]
    assert [row[:3] for row in rows] == [
        ["steps", "build", "local"],
        ["steps", "shout", "local"],
        ["steps", "wait", "local"],
    ]
    assert all(len(row) == 5 for row in rows)
    build, shout, wait = rows
    assert build[3] == (
        'make all | tee build.log\ntest -s build.log && echo "*built* _1.2.3_"'
    )
    assert build[4] == "rm -f build.log"
    assert shout[3] == (
        "when params.version != '': true\n"
        r"""echo 'a|b' '`tick`' '<b>bold</b>' 'back\slash' '**star**'"""
    )
    assert wait[3].startswith("sleep 1") and wait[4] == ""
    tags = parser.tags[0]
    # commands are code, shown as written: no emphasis, no HTML let through
    assert tags[1][3] == ["code", "br"] and tags[2][3] == ["br", "code"]
    assert not {"em", "strong", "b"} & {t for row in tags for cell in row for t in cell}
