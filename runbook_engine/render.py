"""Jinja2 rendering: strict undefined, bounded size and time, JSON data only.

Owns rendering templates and evaluating expressions for the engine, and reading
them statically for ``validate``; with ``sandbox.py`` and ``spec/lint.py`` the only
modules that import ``jinja2``. Values that come from params, secrets, env,
inventories or step output are data: they are passed in the context and never
rendered again.

What a template may do is ``sandbox.py``: every template renders in its
:class:`~runbook_engine.sandbox.Sandbox`. Every failure is a
:class:`~runbook_engine.errors.RenderError` naming where it happened; nothing a
template does escapes as another exception.

The static side, for ``runbook validate``: :func:`references` and :func:`forbidden`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import TemplateSyntaxError as TemplateSyntaxError
from jinja2 import Undefined, UndefinedError, nodes
from jinja2.exceptions import SecurityError, TemplateError

from .errors import RenderError
from .sandbox import (
    MAX_INT_BITS,
    MAX_ITEMS,
    MAX_RENDERED,
    MAX_SECONDS,
    STR_FORMAT,
    Placeholder,
    Sandbox,
    as_text,
    not_data,
)

__all__ = [
    "MAX_INT_BITS",
    "MAX_ITEMS",
    "MAX_RENDERED",
    "MAX_SECONDS",
    "ROOTS",
    "Placeholder",
    "Renderer",
    "TemplateSyntaxError",
    "as_text",
    "evaluate",
    "forbidden",
    "is_template",
    "known_globals",
    "parse_expression",
    "parse_template",
    "references",
    "render",
    "render_value",
    "value_paths",
]

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.S)


_ENV = Sandbox()


def is_template(value: str) -> bool:
    return "{{" in value or "{%" in value or "{#" in value


@lru_cache(maxsize=4096)
def _template(source: str) -> Any:
    return _ENV.from_string(source)


@lru_cache(maxsize=4096)
def _expression(source: str) -> Any:
    return _ENV.compile_expression(source, undefined_to_none=False)


def parse_template(source: str) -> nodes.Template:
    """Raises TemplateSyntaxError (with ``lineno``) for a broken template."""
    return _ENV.parse(source)


def parse_expression(source: str) -> nodes.Template:
    return _ENV.parse("{{ (" + source + ") }}")


class _Deadline:
    def __enter__(self) -> None:
        self.outer = getattr(_ENV.deadline, "at", None)
        if self.outer is None:
            _ENV.deadline.at = time.monotonic() + MAX_SECONDS

    def __exit__(self, *exc: object) -> None:
        _ENV.deadline.at = self.outer


def render(source: str, context: Mapping[str, Any], where: str) -> str:
    """Render a template string. ``where`` names it in errors ("step 'x' run")."""
    if not is_template(source):
        return source
    try:
        with _Deadline():
            text = str(_template(source).render(context))
    except Exception as exc:  # anything a template does is the template's problem
        raise RenderError(f"{where}: {_explain(exc)}") from None
    if len(text) > MAX_RENDERED:
        raise RenderError(f"{where}: rendered value is over {MAX_RENDERED} bytes")
    return text


def evaluate(expression: str, context: Mapping[str, Any], where: str) -> Any:
    """Evaluate a Jinja expression written without braces. The value may be any
    object the context holds (``when`` only asks whether it is true)."""
    try:
        with _Deadline():
            value = _expression(expression)(**context)
            if isinstance(value, Undefined):
                value._fail_with_undefined_error()
            return value
    except Exception as exc:  # anything a template does is the template's problem
        raise RenderError(f"{where}: {_explain(exc)} in `{expression}`") from None


def render_value(value: Any, context: Mapping[str, Any], where: str) -> Any:
    """Render strings inside nested data. A string that is exactly one ``{{ expr }}``
    keeps the expression's native type (a number stays a number), which must be
    JSON data: str, int, float, bool, None, lists and string-keyed mappings."""
    if isinstance(value, str):
        match = _SINGLE_EXPRESSION.match(value)
        if not match:
            return render(value, context, where)
        result = evaluate(match.group("expr"), context, where)
        problem = not_data(result)
        if problem is not None:
            expr = match.group("expr").strip()
            raise RenderError(
                f"{where}: `{expr}` {problem}; for its text write"
                f" `{{{{ ({expr}) | string }}}}`"
            )
        return result
    if isinstance(value, Mapping):
        return {k: render_value(v, context, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render_value(v, context, where) for v in value]
    return value


class Renderer:
    """Renders the fields of one step against its context. ``where`` names the step
    in errors ("step 'migrate'"); each call names the field ("run", "env.X")."""

    __slots__ = ("context", "where")

    def __init__(self, context: Mapping[str, Any], where: str) -> None:
        self.context = context
        self.where = where

    def _at(self, what: str) -> str:
        return f"{self.where} {what}" if what else self.where

    def text(self, source: str, what: str = "") -> str:
        """A template string rendered to text."""
        return render(source, self.context, self._at(what))

    def value(self, value: Any, what: str = "") -> Any:
        """Strings inside data rendered; ``"{{ expr }}"`` alone keeps its type."""
        return render_value(value, self.context, self._at(what))

    def evaluate(self, expression: str, what: str = "") -> Any:
        """A Jinja expression written without braces."""
        return evaluate(expression, self.context, self._at(what))

    def text_of(self, value: Any, what: str = "") -> str:
        """``value`` rendered, as text for an argument, env value or header (a list
        or mapping becomes JSON, never a Python repr)."""
        return as_text(self.value(value, what))

    def bind(self, **names: Any) -> Renderer:
        """The same renderer with some context names replaced (e.g. ``steps``)."""
        return Renderer({**self.context, **names}, self.where)


def _explain(exc: BaseException) -> str:
    if isinstance(exc, UndefinedError):
        message = str(exc)
        match = re.match(r"'(.+?)' has no attribute '(.+?)'", message)
        if match:
            return (
                f"undefined: {match.group(2)!r} is not in {_describe(match.group(1))}"
            )
        return f"undefined: {message}"
    if isinstance(exc, TemplateSyntaxError):
        return f"template syntax error: {exc.message}"
    if isinstance(exc, SecurityError):
        return f"not allowed in templates: {exc}"
    if isinstance(exc, RecursionError):
        return "not allowed in templates: recursion too deep"
    if isinstance(exc, RenderError | TemplateError | ArithmeticError | ValueError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _describe(obj: str) -> str:
    return "that mapping" if obj in {"dict object", "StrictUndefined"} else obj


# -- static analysis for validation ----------------------------------------------------

ROOTS = ("params", "vars", "secrets", "steps", "env", "host", "run")


def references(
    source: str, *, expression: bool
) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """(undeclared top-level names, {(root, key)} for ``root.key`` / ``root['key']``).
    Raises TemplateSyntaxError for a broken template. One walk of the AST (jinja's
    ``meta.find_undeclared_variables`` compiles the template, ten times slower);
    remembered, as the same ``when:`` tends to come back step after step."""
    return _references(source, expression)


@lru_cache(maxsize=8192)
def _references(
    source: str, expression: bool
) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    if not expression:
        simple = _simple_references(source)
        if simple is not None:
            return frozenset(simple[0]), frozenset(simple[1])
    tree = parse_expression(source) if expression else parse_template(source)
    loaded: set[str] = set()
    stored: set[str] = set()
    refs: set[tuple[str, str]] = set()
    stack: list[nodes.Node] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, nodes.Name):
            (stored if node.ctx in ("store", "param") else loaded).add(node.name)
        elif isinstance(node, nodes.Macro):
            stored.add(node.name)
        elif isinstance(node, nodes.Getattr | nodes.Getitem):
            _reference(node, refs)
        stack.extend(node.iter_child_nodes())
    return frozenset(loaded - stored), frozenset(refs)


# `{{ a.b.c }}` or `{{ a.b | f | g }}`: most templates in runbooks look like this
_SIMPLE_PIECE = re.compile(
    r"\{\{\s*(?P<path>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*(?:\|\s*[A-Za-z_]\w*\s*)*\}\}"
)


def _simple_references(
    source: str,
) -> tuple[set[str], set[tuple[str, str]]] | None:
    """The references of a template made only of text and simple ``{{ a.b | f }}``
    pieces, without parsing it (a tenth of the cost); None for anything else."""
    if "{%" in source or "{#" in source:
        return None
    paths = [m.group("path").split(".") for m in _SIMPLE_PIECE.finditer(source)]
    if "{{" in _SIMPLE_PIECE.sub("", source):
        return None
    names = {parts[0] for parts in paths}
    refs = {(p[0], p[1]) for p in paths if len(p) > 1 and p[0] in ROOTS}
    return names, refs


def _reference(node: nodes.Getattr | nodes.Getitem, refs: set[tuple[str, str]]) -> None:
    base = node.node
    if not isinstance(base, nodes.Name) or base.name not in ROOTS:
        return
    if isinstance(node, nodes.Getattr):
        refs.add((base.name, node.attr))
    elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        refs.add((base.name, node.arg.value))


# only templates that mention one of these can do what `forbidden` looks for
_SUSPECT = re.compile(r"\.\s*_|\[\s*['\"]_|format|mro|attr|\bself\b")


def forbidden(source: str, *, expression: bool) -> list[str]:
    """What a template tries that the sandbox refuses, found without running it:
    attributes starting with ``_`` (also through ``attr()`` or ``['_x']``),
    ``format`` / ``format_map`` / ``mro`` calls, and Jinja's ``self``. Raises
    TemplateSyntaxError for a broken template."""
    if not _SUSPECT.search(source):
        return []
    return list(_forbidden(source, expression))


@lru_cache(maxsize=4096)
def _forbidden(source: str, expression: bool) -> tuple[str, ...]:
    tree = parse_expression(source) if expression else parse_template(source)
    found: list[str] = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        name = _attribute_named(node)
        if name is None:
            continue
        if name.startswith("_"):
            problem = f"attribute {name!r}: names starting with '_' are internal"
        elif name in STR_FORMAT:
            problem = f"{name}(): use the `format` filter or `~` to build text"
        elif name == "mro":
            problem = "mro(): classes are not data"
        else:
            continue
        found.append(f"not allowed in templates: {problem}")
    if any(n.name == "self" for n in tree.find_all(nodes.Name)):
        found.append("not allowed in templates: 'self' (the template object)")
    return tuple(dict.fromkeys(found))


def _attribute_named(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node, nodes.Getitem):
        arg = node.arg
        if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
            return arg.value
        return None
    if isinstance(node, nodes.Filter) and node.name in ("attr", "map"):
        args = [*node.args, *(kw.value for kw in node.kwargs if kw.key == "attribute")]
        names = [a.value for a in args if isinstance(a, nodes.Const)]
        return next((n for n in names if isinstance(n, str)), None)
    return None


def known_globals() -> frozenset[str]:
    return frozenset(_ENV.globals)


def value_paths(expression: str) -> list[str]:
    """Dotted paths (``steps.db.rc``) read by an expression, longest chains only."""
    try:
        tree = parse_expression(expression)
    except TemplateSyntaxError:
        return []
    paths: list[str] = []
    inner: set[int] = set()
    for node in tree.find_all(nodes.Getattr):
        if id(node) in inner:
            continue
        parts = []
        current: nodes.Node = node
        while isinstance(current, nodes.Getattr):
            inner.add(id(current))
            parts.append(current.attr)
            current = current.node
        if isinstance(current, nodes.Name):
            paths.append(".".join([current.name, *reversed(parts)]))
    return sorted(set(paths))
