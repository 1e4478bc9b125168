"""spec/validate.py: the semantic checks, on whatever part of a document is sound."""

from __future__ import annotations

from runbook_engine.spec.loader import read_yaml
from runbook_engine.spec.model import MAX_COMMAND_BYTES, fits_in_one_argument
from runbook_engine.spec.validate import check_document


def problems(text: str) -> list[str]:
    doc = read_yaml("rb.yaml", text)
    found = check_document(doc.data, doc.positions, doc.text)
    return [f"{d.line}:{d.col}: {d.message}" for d in found]


def step(body: str) -> str:
    return f"version: 1\nname: big\nsteps:\n  - id: s\n{body}"


LIMIT = (
    "one command must be under 131,072 bytes (128 KiB, Linux's limit for one"
    " argument): put the script in a file, copy it to the host and run that"
)


def test_a_command_too_long_for_one_argument_is_refused_where_it_is_written():
    longest = "x" * (MAX_COMMAND_BYTES - 1)
    assert fits_in_one_argument(longest) and not fits_in_one_argument(longest + "x")
    assert problems(step(f"    run: {longest}\n")) == []
    too_long = "é" * (MAX_COMMAND_BYTES // 2)  # 2 bytes each: counted in UTF-8
    assert problems(step(f"    run: {too_long}\n")) == [
        f"5:10: step 's': 'run' is 131,072 bytes; {LIMIT}"
    ]


def test_argv_items_and_undo_commands_have_the_same_limit():
    big = "y" * MAX_COMMAND_BYTES
    text = step(f"    argv: [echo, ok, {big}]\n    undo: {big}\n") + (
        f"  - id: t\n    run: 'true'\n    undo: {{argv: [rm, {big}]}}\n"
    )
    assert problems(text) == [
        f"5:22: step 's': 'argv[2]' is 131,072 bytes; {LIMIT}",
        f"6:11: step 's': 'undo' is 131,072 bytes; {LIMIT}",
        f"9:23: step 't': 'undo.argv[1]' is 131,072 bytes; {LIMIT}",
    ]


def test_semantic_checks_run_on_a_document_the_schema_refuses():
    text = (
        "version: 1\nname: x\nparams: 5\nvars: [1]\nsteps:\n"
        "  - 7\n  - {id: 5, run: 'echo {{ params.a }}'}\n"
        "  - {assert: 3, when: 4, retries: 2, set: [1]}\n"
        "  - {id: ok, run: 'echo {{ steps.nope.rc }}', env: {A: '{{ vars.b }}'}}\n"
    )
    assert problems(text) == [
        "7:18: step #2 in 'steps': unknown param params.a",
        "9:19: step 'ok': unknown step steps.nope",
        "9:56: step 'ok': unknown var vars.b",
    ]
