"""schemas/runbook.schema.json and spec/schema.py: the format's one source of truth,
and violations explained for humans at the right line:col."""

from __future__ import annotations

import copy
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from runbook_engine.spec.loader import load_yaml
from runbook_engine.spec.schema import _quick_check, load_schema, validate_document

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schemas" / "runbook.schema.json"
PACKAGED = ROOT / "runbook_engine" / "schemas" / "runbook.schema.json"
CASES = ROOT / "tests" / "cases"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())


def messages(text: str) -> list[str]:
    doc = load_yaml("rb.yaml", text)
    return [f"{d.line}:{d.col}: {d.message}" for d in validate_document(doc, "runbook")]


HEAD = "version: 1\nname: demo\n"


def step(body: str) -> str:
    return f"{HEAD}steps:\n  - id: x\n{body}"


# -- the schema itself -----------------------------------------------------------------


def walk_schemas(node: Any, where: str = "#") -> list[tuple[str, dict[str, Any]]]:
    """Every subschema with its JSON pointer."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((where, node))
        for key, value in node.items():
            if key in ("properties", "$defs"):
                for name, sub in value.items():
                    found += walk_schemas(sub, f"{where}/{key}/{name}")
            elif key in ("items", "additionalProperties", "propertyNames", "not", "if"):
                found += walk_schemas(value, f"{where}/{key}")
            elif key == "then":
                found += walk_schemas(value, f"{where}/then")
            elif key in ("anyOf", "oneOf", "allOf"):
                for index, sub in enumerate(value):
                    found += walk_schemas(sub, f"{where}/{key}/{index}")
    return found


def test_schema_is_valid_draft_2020_12() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(SCHEMA)


def test_every_property_has_a_description() -> None:
    missing = [
        f"{where}/properties/{name}"
        for where, node in walk_schemas(SCHEMA)
        if where.split("/")[-2:-1] != ["if"]
        and "/if" not in where
        and "/then" not in where
        for name, sub in node.get("properties", {}).items()
        if not (isinstance(sub, dict) and sub.get("description"))
    ]
    assert missing == []
    undocumented_defs = [
        name for name, sub in SCHEMA["$defs"].items() if "description" not in sub
    ]
    assert undocumented_defs == []


def test_every_object_with_properties_is_closed() -> None:
    open_objects = [
        where
        for where, node in walk_schemas(SCHEMA)
        if "properties" in node and "/if" not in where and "/then" not in where
        if node.get("additionalProperties") is not False
    ]
    assert open_objects == []


def test_schema_covers_the_whole_format() -> None:
    assert set(SCHEMA["properties"]) == {
        "version", "name", "description", "params", "secrets", "vars", "hosts", "lock",
        "serial", "max_fail_percentage", "on_failure", "timeout", "batch_gate",
        "preconditions", "steps", "verify", "rollback", "finally",
    }  # fmt: skip
    step_keys = set(SCHEMA["$defs"]["step"]["properties"])
    actions = {b["required"][0] for b in SCHEMA["$defs"]["step"]["oneOf"]}
    assert actions == {
        "run", "argv", "http", "assert", "approve", "set", "sleep", "include", "copy",
        "template",
    }  # fmt: skip
    assert actions < step_keys
    assert {"when", "retries", "undo", "undo_on_failure", "safe", "with"} < step_keys


def test_packaged_copy_is_byte_identical() -> None:
    assert PACKAGED.read_bytes() == SCHEMA_FILE.read_bytes()
    assert load_schema("runbook") == SCHEMA


def test_load_schema_returns_a_fresh_copy_and_refuses_odd_names() -> None:
    load_schema("runbook")["properties"].clear()
    assert load_schema("runbook")["properties"]
    with pytest.raises(ValueError, match="no packaged schema"):
        load_schema("nope")
    with pytest.raises(ValueError, match="not a schema name"):
        load_schema("../runbook")


# -- messages --------------------------------------------------------------------------


def test_valid_runbook_has_no_diagnostics() -> None:
    assert messages(step("    run: make\n")) == []


def test_unknown_key_suggests_the_closest_match() -> None:
    assert messages(step("    run: make\n    retires: 3\n    colour: red\n")) == [
        "6:5: step 'x': unknown key 'retires' (did you mean 'retries'?)",
        "7:5: step 'x': unknown key 'colour'",
    ]


def test_unknown_top_level_and_nested_keys() -> None:
    text = (
        step("    run: make\n    retries: {attempts: 2, dealy: 1s}\n") + "stpes: []\n"
    )
    assert messages(text) == [
        "6:28: step 'x': unknown key 'dealy' in 'retries' (did you mean 'delay'?)",
        "7:1: unknown key 'stpes' (did you mean 'steps'?)",
    ]


def test_typo_of_an_action_does_not_also_say_no_action() -> None:
    assert messages(step("    rnu: make\n")) == [
        "5:5: step 'x': unknown key 'rnu' (did you mean 'run'?)"
    ]


def test_step_without_usable_id_is_named_by_its_place() -> None:
    text = (
        "version: 1\nname: demo\nverify:\n  - {run: a}\nsteps:\n  - id: 7\n    run: b\n"
    )
    assert messages(text) == [
        "4:5: step #1 in 'verify': missing required key 'id'",
        "6:9: step #1 in 'steps': 'id' must be a string: YAML read the unquoted 7 as"
        " the number 7; write '7' in quotes",
    ]


def test_type_error_names_expected_type() -> None:
    assert messages(step("    run: make\n    local: sometimes\n")) == [
        "6:12: step 'x': 'local' must be true or false, not the string 'sometimes'"
    ]


def test_yaml_11_surprise_says_how_to_quote() -> None:
    assert messages(step("    copy: {src: a, dest: b, mode: 0755}\n")) == [
        "5:35: step 'x': 'copy.mode' must be a string: YAML read the unquoted 0755"
        " as the number 493; write '0755' in quotes"
    ]


def test_empty_value_where_a_string_is_needed() -> None:
    assert messages(step("    run:\n")) == [
        "5:9: step 'x': 'run' must be a string: the value is empty"
    ]


def test_enum_lists_allowed_values() -> None:
    assert messages(step("    run: make\n    on_failure: retry\n")) == [
        "6:17: step 'x': 'on_failure' must be one of rollback, abort, continue;"
        " got 'retry'"
    ]


def test_param_enum_of_the_wrong_type() -> None:
    text = HEAD + "params:\n  debug: {enum: [yes, no]}\nsteps: [{id: a, run: b}]\n"
    assert messages(text) == [
        "4:18: param 'debug': 'enum[0]' must be a string: YAML read the unquoted yes"
        " as the boolean true; write 'yes' in quotes",
        "4:23: param 'debug': 'enum[1]' must be a string: YAML read the unquoted no"
        " as the boolean false; write 'no' in quotes",
    ]


def test_typed_param_default_must_match_its_type() -> None:
    text = (
        HEAD
        + "params:\n  n: {type: integer, default: many}\nsteps: [{id: a, run: b}]\n"
    )
    assert messages(text) == [
        "4:31: param 'n': 'default' must be an integer, not the string 'many'"
    ]


def test_bad_names_in_maps_point_at_the_key() -> None:
    text = HEAD + "vars:\n  my-var: 1\nsteps: [{id: a, run: b, env: {1X: a}}]\n"
    assert messages(text) == [
        "4:3: 'my-var' in 'vars' is not a valid variable name: use letters, digits"
        " and _, not starting with a digit",
        "5:31: step 'a': '1X' in 'env' is not a valid environment variable name: use"
        " letters, digits and _, not starting with a digit",
    ]


def test_diagnostics_are_sorted_by_position() -> None:
    text = step("    run: make\n    timeout: soon\n") + "  - id: Y\n    run: a\n"
    lines = [tuple(map(int, m.split(":")[:2])) for m in messages(text)]
    assert lines == sorted(lines) and len(lines) == 2


def test_no_raw_jsonschema_wording_for_any_case() -> None:
    raw = re.compile(r"is not valid under|is not of type|does not match|was unexpected")
    for path in (CASES / "invalid").glob("*.yaml"):
        try:
            doc = load_yaml(path)
        except Exception:
            continue
        for diagnostic in validate_document(doc, "runbook"):
            assert not raw.search(diagnostic.message), diagnostic


# -- the quick check agrees with jsonschema --------------------------------------------


def mutations(data: dict[str, Any], count: int) -> list[Any]:
    """Small random edits of a valid runbook: drop, retype or add a key somewhere."""
    rng = random.Random(2)
    junk: list[Any] = [
        None,
        True,
        0,
        -1,
        1.5,
        "",
        "x",
        "0644",
        "5s",
        [],
        {},
        ["a"],
        {"run": "x"},
    ]
    out = []
    for _ in range(count):
        mutated = copy.deepcopy(data)
        node: Any = mutated
        for _ in range(rng.randint(1, 4)):
            children = (
                list(node.items()) if isinstance(node, dict) else list(enumerate(node))
            )
            children = [(k, v) for k, v in children if isinstance(v, dict | list) and v]
            if not children:
                break
            node = rng.choice(children)[1]
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        action = rng.choice(["drop", "retype", "add"])
        if action == "drop" and keys:
            del node[rng.choice(keys)]
        elif action == "retype" and keys:
            node[rng.choice(keys)] = rng.choice(junk)
        elif isinstance(node, dict):
            node[rng.choice(["run", "argv", "with", "mode", "zzz", "timeout"])] = (
                rng.choice(junk)
            )
        out.append(mutated)
    return out


def test_quick_check_agrees_with_jsonschema() -> None:
    quick = _quick_check("runbook")
    assert quick is not None
    validator = Draft202012Validator(
        SCHEMA, format_checker=FormatChecker(formats=("regex",))
    )
    documents: list[Any] = []
    for path in sorted(CASES.glob("*/*.yaml")):
        try:
            documents.append(load_yaml(path).data)
        except Exception:
            continue
    documents += mutations(load_yaml(CASES / "valid" / "full.yaml").data, 600)
    disagreements = [d for d in documents if quick(d) != validator.is_valid(d)]
    assert disagreements == []
    assert sum(1 for d in documents if not validator.is_valid(d)) > 300


# -- speed -----------------------------------------------------------------------------


def generated_runbook(index: int, steps: int = 50) -> str:
    lines = [
        "version: 1",
        f"name: bench-{index}",
        "params:",
        "  version: {type: string, required: true}",
        "  workers: {type: integer, default: 2}",
        "steps:",
    ]
    for n in range(steps):
        lines += [
            f"  - id: step_{n}",
            f"    name: Step {n}",
            f"    run: echo {n} {{{{ params.version }}}}",
            "    timeout: 30s",
            "    env: {A: '1', B: two}",
            "    retries: {attempts: 3, delay: 1s, backoff: 2}",
            f"    undo: echo undo {n}",
            "    when: params.workers > 1",
        ]
    return "\n".join(lines) + "\n"


def test_generated_fifty_step_runbooks_are_valid(tmp_path: Path) -> None:
    # the corpus bench/ times (validation of 100 x 50 steps); here only correctness:
    # timings live in the benchmark, never in a unit test
    paths = []
    for index in range(5):
        path = tmp_path / f"rb{index}.yaml"
        path.write_text(generated_runbook(index))
        paths.append(path)
    problems = [d for p in paths for d in validate_document(load_yaml(p), "runbook")]
    assert problems == []


def test_only_the_schema_module_imports_jsonschema() -> None:
    package = ROOT / "runbook_engine"
    importers = [
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if re.search(
            r"^\s*(import jsonschema|from jsonschema\b)", path.read_text(), re.M
        )
    ]
    assert importers == ["spec/schema.py"]
