"""Rendering: strict, sandboxed, bounded, rendered once; and the reference scanner
that validation uses agrees with Jinja's own parser."""

from __future__ import annotations

import re

import pytest

from runbook_engine import render
from runbook_engine.errors import RenderError


def test_a_typo_is_an_error_naming_the_variable_never_an_empty_string():
    with pytest.raises(RenderError, match="step 'x' run: undefined: 'verison'"):
        render.render(
            "echo {{ params.verison }}", {"params": {"version": "1"}}, "step 'x' run"
        )


def test_quote_filter_makes_values_shell_safe():
    assert (
        render.render("rm {{ p | quote }}", {"p": "a b; rm -rf /"}, "w")
        == "rm 'a b; rm -rf /'"
    )


def test_values_are_data_and_never_rendered_again():
    out = render.render(
        "{{ steps.a.stdout }}", {"steps": {"a": {"stdout": "{{ 7*7 }}"}}}, "w"
    )
    assert out == "{{ 7*7 }}"


def test_a_single_expression_keeps_its_native_type():
    assert render.render_value("{{ 40 + 2 }}", {}, "w") == 42
    assert render.render_value("n={{ 40 + 2 }}", {}, "w") == "n=42"


def test_rendering_is_bounded_in_time_and_size():
    with pytest.raises(RenderError, match="longer than 2s"):
        render.render(
            "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
            {},
            "w",
        )
    with pytest.raises(RenderError, match="over 1048576 bytes"):
        render.render("{% for i in range(2000) %}{{ 'x' * 1000 }}{% endfor %}", {}, "w")


def test_the_sandbox_refuses_unsafe_attributes():
    with pytest.raises(RenderError, match=r"not allowed|undefined"):
        render.render("{{ ''.__class__.__mro__ }}", {}, "w")


@pytest.mark.parametrize(
    "source",
    [
        "echo {{ params.version }}",
        "{{ vars.release_dir | quote }}/{{ host.name }}",
        "plain text }} with a brace",
        "{{ steps.health.json }} {{ secrets.token | tojson | quote }}",
        "{{ env.HOME }}{{ run.id }}",
        "{{ item }}",
    ],
)
def test_the_fast_reference_scan_agrees_with_jinjas_parser(source):
    fast = render._simple_references(source)
    assert fast is not None
    names, refs = fast
    slow_names, slow_refs = _parsed(source)
    assert (names, refs) == (slow_names, slow_refs)


@pytest.mark.parametrize(
    "source",
    [
        "{{ a + b }}",
        "{% if x %}y{% endif %}",
        "{{ a['b'] }}",
        "{{ f(x) }}",
        "{{ a.b }} {{ c | d(1) }}",
    ],
)
def test_anything_beyond_simple_pieces_goes_to_the_parser(source):
    assert render._simple_references(source) is None


def _parsed(source: str) -> tuple[set[str], set[tuple[str, str]]]:
    tree = render.parse_template(source)
    loaded, refs = set(), set()
    for node in tree.find_all(render.nodes.Name):
        loaded.add(node.name)
    for node in tree.find_all(render.nodes.Getattr):
        if isinstance(node.node, render.nodes.Name) and node.node.name in render.ROOTS:
            refs.add((node.node.name, node.attr))
    return loaded, refs


# -- hostile templates -------------------------------------------------------------

CONTEXT = {
    "params": {"version": "1.0"},
    "vars": {"names": ["a", "b"], "cfg": {"k": "v"}},
    "steps": {"a": {"stdout": "out", "json": {"k": 1}}},
    "run": {"id": "r1"},
}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ ''.__class__ }}", "not allowed in templates"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "not allowed"),
        ("{{ params['__class__'] }}", "not allowed"),
        ("{{ (params | attr('__class__')) }}", "not allowed"),
        ("{{ ''.format_map }}", "not allowed in templates"),
        ("{{ '{0.__class__}'.format(params) }}", "'format' of 'str' object"),
        ("{{ '{0}'['format'](1) }}", "not allowed"),
        ("{{ cycler('a', 'b') }}", "'cycler' is undefined"),
        ("{{ joiner() }}", "'joiner' is undefined"),
        ("{{ namespace(a=1) }}", "'namespace' is undefined"),
        ("{{ lipsum(1000000) }}", "'lipsum' is undefined"),
        ("{{ range(10**9) | length }}", "Range too big"),
        ("{{ 'x' * 2000000000 }}", "over the limit"),
        ("{{ ['x'] * 2000000000 }}", "over the limit"),
        ("{{ 9 ** 999999 }}", "over the limit of 4,096"),
        ("{{ (2 ** 4000) * (2 ** 4000) }}", "over the limit of 4,096"),
        ("{{ '%0999999999d' % 1 }}", "over the limit"),
        ("{{ '%0999999999d' | format(1) }}", "over the limit"),
        ("{{ 'x' | center(999999999) }}", "over the limit"),
        ("{{ 'x' | indent(999999999, true) }}", "over the limit"),
        ("{{ 'x'.rjust(999999999) }}", "over the limit"),
        ("{{ 'x'.zfill(999999999) }}", "over the limit"),
        ("{{ '\t'.expandtabs(999999999) }}", "over the limit"),
        ("{{ ('x' * 1000000).replace('x', 'yyyyyyyy') }}", "over the limit"),
        ("{{ ('x' * 1000000) | replace('x', 'yy') }}", "over the limit"),
        ("{{ ('x' * 100000).join(range(100) | map('string') | list) }}", "over"),
        ("{{ [1, 2] | tojson(999999999) }}", "over the limit"),
        ("{{ range(10) | batch(999999999, 0) | list }}", "over the limit"),
        ("{{ vars.names.append('c') }}", "not allowed"),
        ("{{ vars.cfg.update({'k': 'w'}) }}", "not allowed"),
        ("{{ vars.cfg.clear() }}", "not allowed"),
        ("{{ self }}", "not data"),
        ("{{ ''.upper }}", "not data"),
        ("{{ dict }}", "the class 'dict'"),
        ("{{ '{}{}'.format }}", "not allowed"),
        ("{{ [1][5] }}", "undefined"),
        (
            "{% macro f(s, n) %}{{ f(s ~ s, n - 1) if n else s | length }}"
            "{% endmacro %}{{ f('x' * 1000, 20) }}",
            "over the limit",
        ),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion too deep"),
    ],
)
def test_hostile_templates_fail_as_render_errors_naming_the_place(source, message):
    with pytest.raises(RenderError, match=re.escape(message)) as caught:
        render.render(source, CONTEXT, "step 'x' run")
    assert str(caught.value).startswith("step 'x' run: ")
    assert CONTEXT["vars"] == {"names": ["a", "b"], "cfg": {"k": "v"}}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ ''.format_map }}", "not allowed in templates"),
        ("{{ params.version.upper }}", "the function or method 'str.upper'"),
        ("{{ dict }}", "the class 'dict'"),
        ("{{ range }}", "not data"),
        ("{{ {1: 'a'} }}", "keys are not all strings"),
        ("{{ [params.version.upper] }}", "not data"),
    ],
)
def test_a_single_expression_must_be_json_data(source, message):
    with pytest.raises(RenderError, match=re.escape(message)) as caught:
        render.render_value(source, CONTEXT, "step 'x' set.v")
    assert str(caught.value).startswith("step 'x' set.v: ")
    if "not data" in message or "function" in message or "class" in message:
        assert "| string" in str(caught.value)


def test_json_data_keeps_its_native_type():
    value = render.render_value(
        {
            "a": "{{ steps.a.json }}",
            "b": ["{{ vars.names }}", "{{ 1.5 }}", "{{ none }}"],
        },
        CONTEXT,
        "w",
    )
    assert value == {"a": {"k": 1}, "b": [["a", "b"], 1.5, None]}


def test_legitimate_templates_still_work():
    source = (
        "{{ 'x' * 3 }} {{ 2 ** 10 }} {{ '%05d' % 42 }} {{ '%s-%s' | format(1, 2) }}"
        " {{ 'ab' | center(6) }}| {{ vars.names | join(',') }} {{ 'a.b'.split('.') }}"
        " {{ range(3) | list }} {{ dict(a=1) }} {{ vars.cfg.get('k') }}"
    )
    assert render.render(source, CONTEXT, "w") == (
        'xxx 1024 00042 1-2   ab  | a,b ["a", "b"] [0, 1, 2] {"a": 1} v'  # JSON
    )


def test_a_placeholder_counts_as_data():
    class Later(render.Placeholder):
        def __str__(self) -> str:
            return "<steps.x.stdout>"

    context = {"steps": {"x": Later()}}
    assert render.render("echo {{ steps.x }}", context, "w") == "echo <steps.x.stdout>"
    assert isinstance(render.render_value("{{ steps.x }}", context, "w"), Later)


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("{{ ''.__class__ }}", "attribute '__class__'"),
        ("{{ params['_secret'] }}", "attribute '_secret'"),
        ("{{ params | attr('__dict__') }}", "attribute '__dict__'"),
        ("{{ x | map(attribute='__class__') | list }}", "attribute '__class__'"),
        ("{{ '{0}'.format(params) }}", "format()"),
        ("{{ s.format_map(params) }}", "format_map()"),
        ("{{ x.mro() }}", "mro()"),
        ("{{ self }}", "'self'"),
    ],
)
def test_forbidden_finds_sandbox_escapes_without_running(source, found):
    (problem,) = render.forbidden(source, expression=False)
    assert found in problem and problem.startswith("not allowed in templates: ")


def test_forbidden_finds_nothing_in_ordinary_templates():
    for source in (
        "echo {{ params.release_dir | quote }}",
        "{{ '%s' | format(x) }} {{ steps.build_1.stdout }}",
        "{{ vars.my_format }}",
    ):
        assert render.forbidden(source, expression=False) == []
    assert render.forbidden("steps.a.json.__class__", expression=True)


def test_a_macro_defined_in_the_template_is_not_an_undefined_name():
    names, _ = render.references(
        "{% macro f(s) %}{{ s }}{% endmacro %}{{ f(params.x) }}", expression=False
    )
    assert names == {"params"}
