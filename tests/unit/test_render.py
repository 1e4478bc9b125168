"""Rendering: strict, sandboxed, bounded, rendered once; and the reference scanner
that validation uses agrees with Jinja's own parser."""

from __future__ import annotations

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
        render.render("{{ 'x' * 2000000 }}", {}, "w")


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
