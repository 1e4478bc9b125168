"""spec/checking.py: which files `runbook validate` checks, and as what (the rule is
in the module's docstring)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from runbook_engine.spec.checking import check_paths, kind_of

if TYPE_CHECKING:
    from pathlib import Path

WORKFLOW = (
    "name: ci\non:\n  pull_request:\njobs:\n  check:\n    runs-on: ubuntu-latest\n"
)
MODELINE = "# yaml-language-server: $schema=../schemas/{}.schema.json\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def found(paths: list[Path]) -> tuple[list[str], int]:
    diagnostics, counted = check_paths(paths)
    return [f"{d.path}:{d.line}:{d.col}: {d.message}" for d in diagnostics], counted


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty (nothing but comments and blank lines)"),
        ("# emptied\n\n", "the file is empty (nothing but comments and blank lines)"),
        (
            "- id: a\n  run: b\n",
            "the top level must be a mapping (key: value), found a list",
        ),
        ("description: half a runbook\n", "missing required key 'version'"),
        (WORKFLOW, "unknown key 'jobs'"),
    ],
)
def test_a_file_named_on_the_command_line_is_always_checked(tmp_path, text, message):
    path = write(tmp_path, "rb.yaml", text)
    messages, counted = found([path])
    assert counted == 1
    assert messages and messages[0].startswith(f"{path}:1:1: ")
    assert any(message in m for m in messages)


def test_a_directory_search_skips_yaml_that_is_not_ours(tmp_path):
    write(tmp_path, "ci/github-actions.yml", WORKFLOW)
    write(tmp_path, "playbook.yml", "- hosts: all\n  tasks: []\n")
    write(tmp_path, "broken-workflow.yml", "on: [push\njobs: {\n")
    # Prometheus rules: a top-level `groups:` that is a list, not an inventory's
    write(tmp_path, "alerts.yml", "groups:\n  - name: app\n    rules: []\n")
    write(tmp_path, "ok.yaml", "version: 1\nname: ok\nsteps: [{id: a, run: 'true'}]\n")
    assert found([tmp_path]) == ([], 1)


def test_a_directory_search_checks_empty_files_and_files_naming_our_schema(tmp_path):
    empty = write(tmp_path, "emptied.yaml", "# was a runbook\n")
    declared = write(tmp_path, "half.yaml", MODELINE.format("runbook") + "params: {}\n")
    inventory = write(
        tmp_path, "inv.yml", MODELINE.format("inventory") + "version: 1\nvars: {}\n"
    )
    messages, counted = found([tmp_path])
    assert counted == 3
    assert f"{empty}:1:1: the file is empty" in "\n".join(messages)
    assert any(m.startswith(f"{declared}:2:1: missing required key") for m in messages)
    assert any(
        m.startswith(f"{inventory}:2:1: missing required key 'hosts'") for m in messages
    )


def test_kind_follows_the_schema_line_then_the_keys(tmp_path):
    inv = write(tmp_path, "a.yaml", "version: 1\nhosts: {web1: {}}\n")
    declared = write(tmp_path, "b.yaml", MODELINE.format("inventory") + "hosts: []\n")
    assert kind_of(inv)[0] == "inventory"
    assert kind_of(declared)[0] == "inventory"
    assert kind_of(write(tmp_path, "c.yaml", WORKFLOW))[0] is None
    assert kind_of(write(tmp_path, "d.yaml", WORKFLOW), named=True)[0] == "runbook"


def test_a_named_file_that_names_another_tools_schema_is_not_ours(tmp_path):
    workflow = "# yaml-language-server: $schema=https://json.schemastore.org/github-workflow.json\n"
    write(tmp_path, "ci.yml", workflow + WORKFLOW)
    assert found([tmp_path / "ci.yml"]) == ([], 0)
