"""spec/loader.py: safe YAML with line:col for every key and value, and refusals
that list every problem in the file."""

from __future__ import annotations

import dataclasses
import datetime
import re
import time
from pathlib import Path

import pytest

from runbook_engine.diagnostics import Position
from runbook_engine.errors import InputError
from runbook_engine.spec.loader import (
    MAX_DEPTH,
    Document,
    explain_plain_scalar,
    load_mapping_file,
    load_yaml,
    read_yaml,
)

PACKAGE = Path(__file__).resolve().parents[2] / "runbook_engine"

RUNBOOK = """\
version: 1
name: demo
steps:
  - id: first
    run: echo one
  - id: migrate
    retries: {attempts: 3, delay: 2s}
    argv:
      - ./manage.py
      - migrate
"""


def problems(text: str) -> list[str]:
    with pytest.raises(InputError) as caught:
        load_yaml("rb.yaml", text)
    return [f"{d.line}:{d.col}: {d.message}" for d in caught.value.diagnostics]


def test_loads_plain_data() -> None:
    doc = load_yaml("rb.yaml", RUNBOOK)
    assert doc.data["steps"][1]["retries"] == {"attempts": 3, "delay": "2s"}
    assert doc.path == "rb.yaml"
    assert doc.text == RUNBOOK


def test_key_and_value_positions_are_one_based() -> None:
    positions = load_yaml("rb.yaml", RUNBOOK).positions
    assert positions.key(("steps", 1, "retries")) == Position("rb.yaml", 7, 5)
    assert positions.value(("steps", 1, "retries")) == Position("rb.yaml", 7, 14)
    assert positions.value(("steps", 1, "retries", "delay")) == Position(
        "rb.yaml", 7, 35
    )
    assert positions.value(("steps", 1, "argv", 1)) == Position("rb.yaml", 10, 9)


def test_list_item_key_position_is_the_item() -> None:
    positions = load_yaml("rb.yaml", RUNBOOK).positions
    assert positions.key(("steps", 1)) == Position("rb.yaml", 6, 5)


def test_missing_path_falls_back_to_nearest_ancestor() -> None:
    positions = load_yaml("rb.yaml", RUNBOOK).positions
    assert positions.key(("steps", 1, "timeout")) == positions.value(("steps", 1))
    assert positions.value(("steps", 1, "retries", "jitter", 0)) == Position(
        "rb.yaml", 7, 14
    )
    assert positions.value(("nope",)) == Position("rb.yaml", 1, 1)


def test_document_is_frozen() -> None:
    doc = load_yaml("rb.yaml", RUNBOOK)
    with pytest.raises(dataclasses.FrozenInstanceError):
        doc.path = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "value", "source"),
    [
        ("0755", 493, "0755"),
        ("3.10", 3.1, "3.10"),
        ("no", False, "no"),
        ("on", True, "on"),
        ("1_000", 1000, "1_000"),
        ("1:30", 90, "1:30"),
        ("2024-01-31", datetime.date(2024, 1, 31), "2024-01-31"),
        ("~", None, "~"),
    ],
)
def test_keeps_source_text_of_unquoted_non_strings(
    text: str, value: object, source: str
) -> None:
    doc = load_yaml("rb.yaml", f"mode: {text}\n")
    assert doc.data["mode"] == value
    assert doc.positions.source_text(("mode",)) == source


@pytest.mark.parametrize("text", ["'0755'", '"no"', "hello", "|\n  0755\n"])
def test_no_source_text_for_strings(text: str) -> None:
    doc = load_yaml("rb.yaml", f"mode: {text}\n")
    assert isinstance(doc.data["mode"], str)
    assert doc.positions.source_text(("mode",)) is None


def test_1e3_is_a_string_in_yaml_but_a_number_in_json(tmp_path: Path) -> None:
    assert load_yaml("rb.yaml", "n: 1e3\n").data == {"n": "1e3"}
    path = tmp_path / "params.json"
    path.write_text('{"n": 1e3, "s": "x\\/y", "flag": true}')
    assert load_mapping_file(path).data == {"n": 1000.0, "s": "x/y", "flag": True}


def test_explain_plain_scalar_says_how_to_quote() -> None:
    assert explain_plain_scalar("0755", 493) == (
        "YAML read the unquoted 0755 as the number 493; write '0755' in quotes"
    )
    assert explain_plain_scalar("no", False) == (
        "YAML read the unquoted no as the boolean false; write 'no' in quotes"
    )


def test_every_duplicate_key_is_reported_at_its_position() -> None:
    text = "a: 1\nb:\n  c: 1\n  c: 2\na: 3\nb: 4\n"
    assert problems(text) == [
        "4:3: duplicate key 'c' (first defined at line 3)",
        "5:1: duplicate key 'a' (first defined at line 1)",
        "6:1: duplicate key 'b' (first defined at line 2)",
    ]


def test_non_string_keys_merge_keys_and_tags_are_refused_together() -> None:
    text = (
        "yes: 1\n? [a]\n: 2\n<<: {x: 1}\n"
        "bin: !!binary aGk=\nobj: !!python/object:os.system x\n"
    )
    assert problems(text) == [
        "1:1: keys must be strings: YAML read the unquoted yes as the boolean true;"
        " write 'yes' in quotes",
        "2:3: keys must be strings, not a mapping or a list",
        "4:1: merge keys ('<<') are not supported: write the keys out",
        "5:6: unsupported tag !!binary",
        "6:6: unsupported tag !!python/object:os.system",
    ]


def test_aliases_expand_with_their_own_paths() -> None:
    doc = load_yaml("rb.yaml", "a: &x {k: [1, 2]}\nb: *x\n")
    assert doc.data["b"] == {"k": [1, 2]}
    assert doc.data["b"] is not doc.data["a"]
    assert doc.positions.key(("b", "k")) == Position("rb.yaml", 1, 8)


def test_alias_bomb_is_refused_quickly_at_the_alias() -> None:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10)]
    started = time.perf_counter()
    found = problems("\n".join(lines) + "\n")
    assert time.perf_counter() - started < 1.0
    assert len(found) == 1
    assert re.fullmatch(
        r"\d+:\d+: aliases expand to more than 10000 values .*", found[0]
    )


def test_recursive_and_undefined_aliases_are_refused() -> None:
    assert problems("a: &a [1, *a]\n") == [
        "1:11: alias *a refers to a node that contains it"
    ]
    assert problems("a: *nope\n") == ["1:4: alias *nope has no anchor &nope before it"]


def test_nesting_is_bounded_without_recursion() -> None:
    fine = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert load_yaml("rb.yaml", fine).data["a"] is not None
    # PyYAML's C composer overflows the C stack at this depth; we never use it
    found = problems("a: " + "[" * 200_000)
    # our bound, or libyaml's own (PyYAML >= 6.0.4 stops its scanner at 1000
    # flow levels before we see the events): refused either way, never a crash
    assert found in (
        [f"1:{3 + MAX_DEPTH}: nested deeper than {MAX_DEPTH} levels"],
        [
            "1:1003: YAML syntax error: exceeded maximum nesting depth"
            " (while increasing flow level at line 1)"
        ],
    )


def test_syntax_error_has_the_marks_position() -> None:
    assert problems("a: 1\nb: [1, 2\n") == [
        "3:1: YAML syntax error: did not find expected ',' or ']'"
        " (while parsing a flow sequence at line 2)"
    ]


def test_tab_indentation_says_to_use_spaces() -> None:
    assert problems("a:\n\tb: 1\n") == [
        "2:1: YAML syntax error: a tab character here:"
        " indent YAML with spaces, not tabs"
    ]


def test_problems_found_before_a_syntax_error_are_kept() -> None:
    assert problems("a: 1\na: 2\nb: 'open\n") == [
        "2:1: duplicate key 'a' (first defined at line 1)",
        "4:1: YAML syntax error: found unexpected end of stream"
        " (while scanning a quoted scalar at line 3)",
    ]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n  \n", "---\n"])
def test_an_empty_file_is_a_positioned_error(text: str) -> None:
    assert problems(text) == [
        "1:1: the file is empty (nothing but comments and blank lines)"
    ]


def test_the_caller_says_what_the_file_should_hold() -> None:
    with pytest.raises(InputError) as caught:
        read_yaml("rb.yaml", "- a\n", shape="a runbook needs version, name and steps")
    assert [str(d) for d in caught.value.diagnostics] == [
        "rb.yaml:1:1: the top level must be a mapping (key: value), found a list:"
        " a runbook needs version, name and steps"
    ]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("- a\n", "a list"),
        ("hello\n", "a string"),
        ("42\n", "the number 42"),
    ],
)
def test_top_level_must_be_a_mapping(text: str, found: str) -> None:
    (problem,) = problems(text)
    assert problem.endswith(
        f"the top level must be a mapping (key: value), found {found}"
    )


def test_more_than_one_document_is_refused() -> None:
    assert problems("a: 1\n---\nb: 2\n") == [
        "2:1: expected one YAML document, found another"
    ]


def test_control_characters_are_a_syntax_error() -> None:
    (problem,) = problems("a: b\x07\n")
    assert problem.startswith("1:5: YAML syntax error:")


def test_reads_the_file_when_no_text_is_given(tmp_path: Path) -> None:
    path = tmp_path / "rb.yaml"
    path.write_text(RUNBOOK)
    doc = load_yaml(path)
    assert isinstance(doc, Document)
    assert doc.path == str(path)
    assert doc.positions.value(("name",)) == Position(str(path), 2, 7)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        load_yaml(tmp_path / "nope.yaml")
    assert "cannot read" in str(caught.value)
    assert caught.value.diagnostics[0].path == str(tmp_path / "nope.yaml")


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "rb.yaml"
    path.write_bytes(b"a: 1\nb: \xff\n")
    with pytest.raises(InputError) as caught:
        load_yaml(path)
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.line, diagnostic.message) == (
        2,
        "not valid UTF-8 (byte 8); save the file as UTF-8",
    )


def test_params_file_follows_the_same_safety_rules(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("version: '1.2.3'\nworkers: 3\nworkers: 4\n")
    with pytest.raises(InputError) as caught:
        load_mapping_file(path)
    assert [d.message for d in caught.value.diagnostics] == [
        "duplicate key 'workers' (first defined at line 2)"
    ]
    json_path = tmp_path / "params.json"
    json_path.write_text('{"a": 1, "a": 2}')
    with pytest.raises(InputError):
        load_mapping_file(json_path)
    json_path.write_text('["not", "a", "mapping"]')
    with pytest.raises(InputError):
        load_mapping_file(json_path)


def test_only_the_loader_imports_yaml() -> None:
    importers = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if re.search(r"^\s*(import yaml|from yaml\b)", path.read_text(), re.MULTILINE)
    ]
    assert importers == ["spec/reader.py"]


def test_a_colon_in_an_unquoted_value_says_to_quote_it() -> None:
    assert problems("version: 1\nsteps:\n  - id: a\n    run: echo a: b\n") == [
        "4:16: YAML syntax error: mapping values are not allowed in this context;"
        " a value containing ': ' must be quoted, e.g. run: \"echo a: b\""
    ]


def test_problems_of_one_value_do_not_stop_reading() -> None:
    doc = read_yaml("rb.yaml", "a: 1\non: push\nb: {c: 1, c: 2}\nd: !!binary aGk=\n")
    assert doc.data == {"a": 1, "b": {"c": 1}, "d": "aGk="}
    assert [f"{d.line}:{d.col}" for d in doc.problems] == ["2:1", "3:11", "4:4"]
    with pytest.raises(InputError):
        load_yaml("rb.yaml", "a: 1\non: push\n")
