"""`runbook plan --format markdown` renders as one GitHub table: checked with a
CommonMark renderer with GFM tables (markdown-it-py), the way a pull request or a
job summary shows it."""

from __future__ import annotations

import pytest

from tests.support.gfm import Page

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


def test_plan_markdown_is_one_github_table_with_a_cell_per_field(
    runbook_cli, write_runbook
):
    rb = write_runbook(RUNBOOK)
    result = runbook_cli("plan", str(rb), "--format", "markdown")
    assert result.code == 0, result.output
    parser = Page(result.stdout)
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
