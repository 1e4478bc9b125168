"""`runbook docs`: a runbook as a Markdown page (params, secret names, go/no-go
checklist, step tables, Mermaid flow) and a directory as pages plus an index."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from runbook_engine.spec.build import load_runbook
from runbook_engine.spec.docs import INDEX, render_docs, write_docs
from tests.support.gfm import Page

if TYPE_CHECKING:
    import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRET_VALUE = "s3cr3t-value-never-shown"

RELEASE = """
    # yaml-language-server: $schema=../schemas/runbook.schema.json
    version: 1
    name: release
    description: Deploy a release of the app.
    params:
      version: {type: string, required: true, pattern: '^\\d+\\.\\d+\\.\\d+$', description: Release to deploy}
      env: {type: string, enum: [staging, production], default: staging}
    secrets:
      db_password: {env: DOCS_TEST_DB_PASSWORD}
    hosts: local
    preconditions:
      - id: disk
        name: Disk has room
        run: df -P /tmp | tail -1
    steps:
      - id: upload
        name: Upload the release
        run: mkdir -p /tmp/rel/{{ params.version | quote }}
        undo: rm -rf /tmp/rel/{{ params.version | quote }}
        timeout: 5m
      - id: migrate
        run: "echo migrate"
        retries: {attempts: 3, delay: 2s}
        on_failure: abort
    verify:
      - id: health
        http: {url: "http://127.0.0.1:9/health"}
    rollback:
      - id: notify
        run: echo rolled back
    finally:
      - id: cleanup
        run: echo done
"""


def write(tmp_path: Path, text: str, name: str = "release.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_page_has_params_secret_names_checklist_and_step_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read as GitHub renders it: every cell shows the runbook's text as written."""
    monkeypatch.setenv("DOCS_TEST_DB_PASSWORD", SECRET_VALUE)
    page = render_docs(load_runbook(write(tmp_path, RELEASE)))
    assert page.startswith("# release\n\nDeploy a release of the app.\n")
    shown = Page(page)
    assert shown.row("version") == [
        "version", r"string matching ^\d+\.\d+\.\d+$", "", "yes", "Release to deploy"
    ]  # fmt: skip
    assert shown.row("env")[:4] == [
        "env", "string (one of staging, production)", "staging", "no"
    ]  # fmt: skip
    assert "db_password: from env DOCS_TEST_DB_PASSWORD" in shown.items
    assert SECRET_VALUE not in page
    assert "[ ] Disk has room (disk): df -P /tmp | tail -1" in shown.items
    assert shown.row("upload") == [
        "upload",
        "Upload the release",
        "local",
        "mkdir -p /tmp/rel/{{ params.version | quote }}",
        "rm -rf /tmp/rel/{{ params.version | quote }}",
        "",
        "5m00s",
        "rollback (default)",
    ]
    migrate = shown.row("migrate")
    assert migrate[5] == "3 attempts, delay 2.0s" and migrate[7] == "abort"
    health = shown.row("health")
    assert health[2] == "control machine"
    assert health[3] == "http GET http://127.0.0.1:9/health (expect 200)"
    for title in ("## Steps", "## Verify", "## Rollback", "## Finally"):
        assert title in page


def test_commands_show_as_written_and_descriptions_keep_their_markdown(
    tmp_path: Path,
) -> None:
    book = write(
        tmp_path,
        r"""
        version: 1
        name: marked
        description: Compare with `a < b && c | d`, then **stop** <here>.
        params:
          tag: {type: string, pattern: '^v[0-9]+\.[0-9]+_*$', description: 'Use `x|y` or *z*'}
        steps:
          - id: shout
            name: Say `<hi>` *loudly*
            when: params.tag != '*'
            run: echo "*not bold* _nor this_ [no](link) ~~kept~~ \. $HOME" | tr a-z A-Z
        """,
    )
    page = render_docs(load_runbook(book))
    shown = Page(page)
    assert "Compare with a < b && c | d, then stop <here>." in shown.text
    assert shown.row("tag")[1] == r"string matching ^v[0-9]+\.[0-9]+_*$"
    assert shown.row("tag")[4] == "Use x|y or z"
    shout = shown.row("shout")
    assert shout[1] == "Say <hi> loudly (when params.tag != '*')"
    assert shout[3] == (
        r'echo "*not bold* _nor this_ [no](link) ~~kept~~ \. $HOME" | tr a-z A-Z'
    )
    params, steps = shown.tags
    assert params[1] == [["code"], ["code"], [], [], ["code", "em"]]  # the author's *z*
    assert steps[1][:4] == [["code"], ["code", "em", "code"], [], ["code"]]


def test_flowchart_shows_the_gate_the_main_path_and_the_rollback_path(
    tmp_path: Path,
) -> None:
    page = render_docs(load_runbook(write(tmp_path, RELEASE)))
    mermaid = re.search(r"```mermaid\n(.*?)```", page, re.S)
    assert mermaid is not None
    chart = mermaid.group(1).splitlines()
    assert chart[0] == "flowchart TD"
    assert '  gate{"go / no-go"}' in chart
    assert "  gate -- no-go --> nogo" in chart
    ids = {
        m.group(2): m.group(1)
        for line in chart
        if (m := re.match(r'  (s\d+)\["([a-z_]+)', line))
    }
    assert f"  gate --> {ids['upload']}" in chart
    assert f"  {ids['upload']} --> {ids['migrate']}" in chart
    assert f"  {ids['health']} --> {ids['cleanup']}" in chart
    assert '  u0["undo upload"]' in chart
    assert "  failed --> u0" in chart and f"  u0 --> {ids['notify']}" in chart
    assert f"  {ids['notify']} --> {ids['cleanup']}" in chart
    assert f"  {ids['migrate']} -. fails .-> failed" in chart


def test_mermaid_labels_cannot_break_the_chart(tmp_path: Path) -> None:
    text = RELEASE.replace("name: Upload the release", "name: 'Say \"hi\" <now> #1'")
    page = render_docs(load_runbook(write(tmp_path, text)))
    assert '["upload: Say #quot;hi#quot; #lt;now#gt; #35;1"]' in page


def test_a_directory_gives_one_page_per_runbook_and_an_index(tmp_path: Path) -> None:
    source = tmp_path / "runbooks"
    source.mkdir()
    write(source, RELEASE)
    write(
        source,
        """
        version: 1
        name: restart
        description: |
          Restart the app.
          Second line.
        steps:
          - id: go
            run: echo restart
            undo: echo nothing
        """,
        "restart.yml",
    )
    (source / "notes.yaml").write_text("just: some data\n")
    out = tmp_path / "docs"
    written = write_docs([source], out)
    assert sorted(p.name for p in written) == [INDEX, "release.md", "restart.md"]
    index = (out / INDEX).read_text()
    assert (
        "| [release](release.md) | Deploy a release of the app. | <code>local</code> |"
        in index
    )
    assert "| [restart](restart.md) | Restart the app. |" in index
    assert (out / "release.md").read_text() == render_docs(
        load_runbook(source / "release.yaml")
    )


def test_a_single_runbook_to_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, RELEASE)
    written = write_docs([path], tmp_path / "out" / "release.md")
    assert written == [tmp_path / "out" / "release.md"]
    assert written[0].read_text().startswith("# release\n")


def test_the_example_runbook_renders() -> None:
    page = render_docs(load_runbook(ROOT / "examples" / "hello.yaml"))
    assert page.startswith("# hello\n")
    assert "```mermaid\nflowchart TD\n" in page


def test_committed_runbook_docs_are_up_to_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed = ROOT / "docs" / "runbooks"
    assert committed.is_dir(), "run: runbook docs runbooks/ --output docs/runbooks/"
    monkeypatch.chdir(
        ROOT
    )  # pages name their source by the path given, as in the README
    fresh = write_docs([Path("runbooks")], tmp_path / "fresh")
    stale = [
        p.name
        for p in fresh
        if not (committed / p.name).is_file()
        or (committed / p.name).read_text() != p.read_text()
    ]
    assert not stale, f"run: runbook docs runbooks/ --output docs/runbooks/ ({stale})"
