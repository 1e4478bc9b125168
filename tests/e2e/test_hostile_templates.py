"""Templates that try to leave the sandbox or to exhaust the machine fail as template
errors naming their step: from `validate` (exit 2, path:line:col) when it can be
seen statically, else as a failed step before its command runs (exit 1); never an
internal error (exit 70), never after the run reported success."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.e2e

STATIC = [
    ("{{ ''.__class__.__mro__ }}", "attribute '__class__': names starting with '_'"),
    ("{{ params['__globals__'] }}", "attribute '__globals__'"),
    ("{{ params | attr('__dict__') }}", "attribute '__dict__'"),
    ("{{ '{0.__class__}'.format_map(params) }}", "format_map()"),
    ("{{ '{0}'.format(run) }}", "format()"),
    ("{{ params.__class__.mro() }}", "mro()"),
    ("{{ cycler('a', 'b').next() }}", "undefined name 'cycler'"),
    ("{{ joiner(',') }}", "undefined name 'joiner'"),
    ("{{ namespace(x=1).x }}", "undefined name 'namespace'"),
    ("{{ lipsum(100000) }}", "undefined name 'lipsum'"),
    ("{{ self }}", "'self' (the template object)"),
    (
        "{% autoescape true %}{{ params | quote }}{% endautoescape %}",
        "autoescape is not allowed",
    ),
]


def test_validate_refuses_what_it_can_see_with_positions(runbook_cli, write_runbook):
    steps = "".join(
        f"  - id: s{i}\n    run: echo {json.dumps(source)}\n"
        for i, (source, _) in enumerate(STATIC)
    )
    rb = write_runbook(f"version: 1\nname: hostile\nsteps:\n{steps}")
    result = runbook_cli("validate", str(rb), "--format", "json")
    assert result.code == 2, result.output
    rows = json.loads(result.stdout)
    for i, (_, message) in enumerate(STATIC):
        line = 5 + 2 * i
        found = [r for r in rows if r["line"] == line]
        assert found, f"nothing on line {line}"
        assert any(message in r["message"] for r in found), found
        assert all(r["message"].startswith(f"step 's{i}': ") for r in found)
        assert all(r["column"] == 10 for r in found)
    run = runbook_cli("run", str(rb))
    assert run.code == 2 and "nothing ran" in run.stderr


RUN_TIME = [
    ("{{ 'x' * 2000000000 }}", "over the limit"),
    ("{{ ['x'] * 2000000000 }}", "over the limit"),
    ("{{ 9 ** 999999 }}", "over the limit of 4,096"),
    ("{{ range(10 ** 9) | list | length }}", "Range too big"),
    ("{{ params.p | attr(params.a) }}", "not allowed in templates"),
    ("{{ ('x' * 1000000).replace('x', 'yy') }}", "over the limit"),
    ("{{ 'x' | center(999999999) }}", "over the limit"),
    ("{{ '%0999999999d' % 1 }}", "over the limit"),
    (
        "{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f('x' * 1000) }}",
        "over the limit",
    ),
    ("{{ params.p.upper() ~ [1][9] }}", "undefined"),
    ("{{ range(1000) | join('x' * 1000000) | length }}", "over the limit"),
    ("{{ range(1000) | map('string') | join('x' * 1000000) }}", "over the limit"),
    ("{{ ('x' * 1000000) | wordwrap(1) | length }}", "over the limit"),
    ("{% set a = ['x' * 1000000] * 100000 %}{{ a | tojson }}", "the repeated text"),
    ("{{ ([[1, 2]] * 3000) | sum(start=[]) }}", "sum adds numbers"),
    (  # a loop over a local variable touches no attribute: the clock still runs
        "{% set l = range(100000) | list %}"
        "{% for i in l %}{% for j in l %}{% endfor %}{% endfor %}",
        "longer than 2s",
    ),
]


def test_run_time_attacks_fail_their_step_before_the_command_runs(
    runbook_cli, write_runbook, tmp_path
):
    steps = "".join(
        f"  - id: s{i}\n    run: touch ran-{i} && echo {json.dumps(source)}\n"
        for i, (source, _) in enumerate(RUN_TIME)
    )
    steps += (
        "  - id: native\n"
        '    set: {m: "{{ params.p.upper }}"}\n'
        "  - id: last\n"
        "    run: touch ran-last\n"
    )
    rb = write_runbook(
        "version: 1\nname: hostile\non_failure: continue\n"
        "params:\n  p: {type: string, default: x}\n  a: {type: string, default: x}\n"
        f"steps:\n{steps}"
    )
    assert runbook_cli("validate", str(rb)).code == 0
    result = runbook_cli(
        "run", str(rb), "-e", "a=__class__", "--output", "json", timeout=60
    )
    assert result.code == 1, result.output
    assert "internal error" not in result.output
    assert sorted(p.name for p in tmp_path.glob("ran-*")) == ["ran-last"]
    statuses = {s["step"]: s["status"] for s in result.json()["steps"]}
    assert statuses == {
        **{f"s{i}": "failed" for i in range(len(RUN_TIME))},
        "native": "failed",
        "last": "changed",
    }
    for i, (_, message) in enumerate(RUN_TIME):
        # "step 's3' run: ..." (the step may also be shown with its path:line)
        named = re.compile(rf"step 's{i}'( \([^)]*\))? run: (?P<why>.*)")
        found = [m for m in map(named.search, result.stderr.splitlines()) if m]
        assert found, f"no failure named step 's{i}'"
        assert message in found[0].group("why"), found[0].group(0)
    native = re.search(r"step 'native'( \([^)]*\))? set\.m: (?P<why>.*)", result.stderr)
    assert native is not None
    assert native.group("why").startswith(
        "`params.p.upper` evaluated to the function or method 'str.upper', not data;"
        " for its text write `{{ (params.p.upper) | string }}`"
    )
    assert runbook_cli("audit", "verify").code == 0


def test_quote_is_shell_safe_after_filters_that_give_html_safe_text(
    runbook_cli, write_runbook, tmp_path
):
    """``tojson``, ``e`` and ``safe`` give Jinja's Markup; quoting it must still give
    one shell word, not ``&#39;`` (which the shell reads as ``&`` and a comment)."""
    rb = write_runbook(
        "version: 1\nname: quoting\n"
        'vars:\n  payload: {a: "it\'s"}\n'
        "steps:\n"
        "  - id: fetch\n"
        "    run: printf 'harmless\\ntouch injected\\n'\n"
        "  - id: json\n"
        "    run: printf '<%s>' {{ vars.payload | tojson | quote }} > json.out\n"
        "  - id: escaped\n"
        "    run: printf '<%s>' {{ steps.fetch.stdout | e | quote }} > escaped.out\n"
        "  - id: safe\n"
        "    run: printf '<%s>' {{ \"it's\" | safe | quote }} > safe.out\n"
    )
    result = runbook_cli("run", str(rb))
    assert result.code == 0, result.output
    assert not (tmp_path / "injected").exists()
    out = {p.stem: p.read_text() for p in tmp_path.glob("*.out")}
    assert out == {
        "json": '<{"a": "it\\u0027s"}>',
        "escaped": "<harmless\ntouch injected\n>",
        "safe": "<it's>",
    }
