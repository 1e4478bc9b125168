"""Jinja2 rendering: a sandbox, strict undefined, bounded size and time.

The only module that imports ``jinja2``. Values that come from params, secrets, env
or step output are data: they are passed in the context and never rendered again.
"""

from __future__ import annotations

import re
import shlex
import threading
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, UndefinedError, nodes
from jinja2 import TemplateSyntaxError as TemplateSyntaxError
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from .errors import RenderError

MAX_RENDERED = 1024 * 1024  # bytes of one rendered value
MAX_SECONDS = 2.0
_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.S)


def _quote(value: object) -> str:
    return shlex.quote(str(value))


class _BoundedEnvironment(SandboxedEnvironment):
    """Checks a per-thread deadline on every attribute access and call, which every
    loop of a template does, so nested loops cannot run for ever."""

    def __init__(self) -> None:
        super().__init__(
            undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
        )
        self.filters["quote"] = _quote
        self.deadline = threading.local()

    def _check(self) -> None:
        deadline = getattr(self.deadline, "at", None)
        if deadline is not None and time.monotonic() > deadline:
            raise RenderError(f"rendering took longer than {MAX_SECONDS:g}s")

    def getattr(self, obj: Any, attribute: str) -> Any:
        self._check()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self._check()
        return super().getitem(obj, argument)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        __self._check()
        return super().call(__context, __obj, *args, **kwargs)


_ENV = _BoundedEnvironment()


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
    except (TemplateError, RenderError, ArithmeticError, TypeError, ValueError) as exc:
        raise RenderError(f"{where}: {_explain(exc)}") from None
    if len(text) > MAX_RENDERED:
        raise RenderError(f"{where}: rendered value is over {MAX_RENDERED} bytes")
    return text


def evaluate(expression: str, context: Mapping[str, Any], where: str) -> Any:
    """Evaluate a Jinja expression written without braces."""
    try:
        with _Deadline():
            return _expression(expression)(**context)
    except (TemplateError, RenderError, ArithmeticError, TypeError, ValueError) as exc:
        raise RenderError(f"{where}: {_explain(exc)} in `{expression}`") from None


def render_value(value: Any, context: Mapping[str, Any], where: str) -> Any:
    """Render strings inside nested data. A string that is exactly one ``{{ expr }}``
    keeps the expression's native type (a number stays a number)."""
    if isinstance(value, str):
        match = _SINGLE_EXPRESSION.match(value)
        if match:
            return evaluate(match.group("expr"), context, where)
        return render(value, context, where)
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
    return str(exc)


def _describe(obj: str) -> str:
    return "that mapping" if obj in {"dict object", "StrictUndefined"} else obj


# -- static analysis for validation ----------------------------------------------------

ROOTS = ("params", "vars", "secrets", "steps", "env", "host", "run")


def references(
    source: str, *, expression: bool
) -> tuple[set[str], set[tuple[str, str]]]:
    """(undeclared top-level names, {(root, key)} for ``root.key`` / ``root['key']``).
    Raises TemplateSyntaxError for a broken template. One walk of the AST (jinja's
    ``meta.find_undeclared_variables`` compiles the template, ten times slower)."""
    if not expression:
        simple = _simple_references(source)
        if simple is not None:
            return simple
    tree = parse_expression(source) if expression else parse_template(source)
    loaded: set[str] = set()
    stored: set[str] = set()
    refs: set[tuple[str, str]] = set()
    stack: list[nodes.Node] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, nodes.Name):
            (stored if node.ctx in ("store", "param") else loaded).add(node.name)
        elif isinstance(node, nodes.Getattr | nodes.Getitem):
            _reference(node, refs)
        stack.extend(node.iter_child_nodes())
    return loaded - stored, refs


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
