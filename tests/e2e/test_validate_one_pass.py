"""`runbook validate` reports every mistake of a file in one pass, each at
path:line:col, in text and json; and a file it is given is always checked."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e


FIVE_MISTAKES = """\
version: 1
name: five
params:
  version: {type: string, default: "1.0.0"}
steps:
  - id: build
    run: make
    retires: 3
  - id: wait
    sleep: soon
  - id: deploy
    local: maybe
    run: ./deploy {{ params.verison }}
  - id: notify
    run: echo done
    on: success
"""


def test_every_kind_of_mistake_is_reported_in_one_pass(runbook_cli, write_runbook):
    rb = write_runbook(FIVE_MISTAKES)
    expected = [
        (8, 5, "step 'build': unknown key 'retires' (did you mean 'retries'?)"),
        (10, 12, "step 'wait': 'sleep' must be a duration like 250ms, 30s, 5m or"
         " 1h, or a number of seconds, got 'soon'"),
        (12, 12, "step 'deploy': 'local' must be true or false, not the string"
         " 'maybe'"),
        (13, 10, "step 'deploy': unknown param params.verison (did you mean"
         " 'version'?)"),
        (16, 5, "keys must be strings: YAML read the unquoted on as the boolean"
         " true; write 'on' in quotes"),
    ]  # fmt: skip
    text = runbook_cli("validate", str(rb))
    assert text.code == 2
    assert text.stdout.splitlines() == [
        f"{rb}:{line}:{c}: {m}" for line, c, m in expected
    ]
    assert "1 file(s) checked: 5 error(s)" in text.stderr
    as_json = runbook_cli("validate", str(rb), "--format", "json")
    assert as_json.code == 2
    rows = json.loads(as_json.stdout)
    assert [(r["line"], r["column"], r["message"]) for r in rows] == expected
    assert {r["file"] for r in rows} == {str(rb)}
    run = runbook_cli("run", str(rb))
    assert run.code == 2 and run.stderr.count(f"{rb}:") == 5


def test_an_emptied_runbook_named_on_the_command_line_fails_validate(
    runbook_cli, write_runbook
):
    rb = write_runbook("# nothing left\n")
    result = runbook_cli("validate", str(rb))
    assert result.code == 2
    assert result.stdout.startswith(f"{rb}:1:1: the file is empty")
    assert "1 file(s) checked: 1 error(s)" in result.stderr


def test_a_zero_timeout_is_refused_where_it_is_written(runbook_cli, write_runbook):
    """0 is not "no timeout": it would kill the command at once."""
    rb = write_runbook(
        "version: 1\nname: t\ntimeout: 0\nsteps:\n"
        "  - id: a\n    run: touch ran\n    timeout: 0s\n"
        "    undo: {run: 'true', timeout: 0ms}\n"
        "  - id: b\n    run: 'true'\n    timeout: 1s\n"
        "  - id: c\n    http: {url: 'http://127.0.0.1:9/', timeout: 0s}\n"
    )
    result = runbook_cli("validate", str(rb), "--format", "json")
    assert result.code == 2, result.output
    rows = [(r["line"], r["column"], r["message"]) for r in result.json()]
    assert [(line, column) for line, column, _ in rows] == [
        (3, 10),
        (7, 14),
        (8, 34),
        (13, 49),
    ]
    assert all("would stop it at once" in message for *_, message in rows)
    assert runbook_cli("run", str(rb)).code == 2
