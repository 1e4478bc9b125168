"""Jinja2 rendering: a sandbox, strict undefined, bounded size and time.

The only module that imports ``jinja2`` (with ``spec/lint.py``, which reads the
AST). Values that come from params, secrets, env, inventories or step output are
data: they are passed in the context and never rendered again.

What a template may do is decided here, by :class:`_Sandbox`:

- Jinja's immutable sandbox: no attribute starting with ``_``, no ``mro``, no
  frames or code objects, no method that changes a list or dict of the context.
- No ``str.format`` / ``format_map`` (they reach attributes through format fields);
  the ``format`` filter and ``~`` build text instead.
- Only the globals ``range`` (at most ``MAX_RANGE`` items) and ``dict``: Jinja's
  ``cycler``, ``joiner``, ``namespace`` and ``lipsum`` are removed, runbooks have no
  use for them and each is one more object to reason about.
- No value grows past the bounds before it is built: ``*``, ``**``, ``+`` and ``%``
  are checked from their operands, and so are the widths and counts given to
  ``center``, ``indent``, ``tojson``, ``batch``, ``slice``, ``replace``, ``join``
  and the string methods that pad.
- A render over :data:`MAX_SECONDS` or a value over :data:`MAX_RENDERED` bytes fails.

Every failure is a :class:`~runbook_engine.errors.RenderError` naming where it
happened; nothing a template does escapes as another exception.

The static side, for ``runbook validate``: :func:`references` and :func:`forbidden`.
"""

from __future__ import annotations

import functools
import inspect
import re
import shlex
import threading
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Final

from jinja2 import StrictUndefined, Undefined, UndefinedError, nodes
from jinja2 import TemplateSyntaxError as TemplateSyntaxError
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment

from .errors import RenderError

__all__ = [
    "MAX_INT_BITS",
    "MAX_ITEMS",
    "MAX_RENDERED",
    "MAX_SECONDS",
    "ROOTS",
    "Placeholder",
    "Renderer",
    "TemplateSyntaxError",
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

MAX_RENDERED: Final = 1024 * 1024
"""Most characters one rendered value (or any string built on the way) may have."""
MAX_SECONDS: Final = 2.0
"""Longest a render may take."""
MAX_ITEMS: Final = MAX_RANGE
"""Most items a list built by a template may have (Jinja's own bound for range)."""
MAX_INT_BITS: Final = 4096
"""Largest integer a template may compute, in bits (``2 ** 4096``)."""

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.S)
_STR_FORMAT: Final = frozenset({"format", "format_map"})
_GLOBALS: Final = ("range", "dict")  # what runbooks may call; the rest is removed


class Placeholder:
    """A value not known yet (``runbook plan`` shows ``<steps.x.stdout>``): counts as
    data, renders as its ``str``."""


def _quote(value: object) -> str:
    return shlex.quote(str(value))


# -- the sandbox ---------------------------------------------------------------------


class _TooBigError(SecurityError):
    """A value would grow past a bound; raised before it is built."""


def _bound(size: int, limit: int, what: str) -> None:
    if size > limit:
        raise _TooBigError(f"{what} would be {size:,}, over the limit of {limit:,}")


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "**" and _is_int(left) and _is_int(right) and right > 0:
        bits = abs(left).bit_length() * right if abs(left) > 1 else 0
        _bound(bits, MAX_INT_BITS, "the integer's size in bits")
    elif operator == "*":
        _check_repeat(left, right)
        _check_repeat(right, left)
        if _is_int(left) and _is_int(right):
            bits = abs(left).bit_length() + abs(right).bit_length()
            _bound(bits, MAX_INT_BITS, "the integer's size in bits")
    elif operator == "+" and isinstance(left, str | list | tuple):
        limit = MAX_RENDERED if isinstance(left, str) else MAX_ITEMS
        if isinstance(right, str | list | tuple):
            _bound(len(left) + len(right), limit, "the result's length")
    elif operator == "%" and isinstance(left, str):
        _check_printf(left)


def _check_repeat(sequence: Any, count: Any) -> None:
    if isinstance(sequence, str | list | tuple) and _is_int(count) and count > 0:
        limit = MAX_RENDERED if isinstance(sequence, str) else MAX_ITEMS
        _bound(len(sequence) * count, limit, "the repeated value's length")


_PRINTF_WIDTH = re.compile(r"%[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_printf(text: str) -> None:
    """``'%0999999999d' % 1`` builds a gigabyte: refuse widths over the bound."""
    for match in _PRINTF_WIDTH.finditer(text):
        for width in match.groups():
            if width == "*":
                raise _TooBigError("a '*' width in a % format is not allowed")
            if width:
                _bound(int(width), MAX_RENDERED, "a % format width")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Bound what a string method would build, before it runs."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, str):
            _bound(len(value), MAX_RENDERED, "an argument's length")
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if not isinstance(owner, str):
        return
    if name in ("center", "ljust", "rjust", "zfill") and args and _is_int(args[0]):
        _bound(args[0], MAX_RENDERED, f"the width given to {name}()")
    elif name == "expandtabs":
        size = int(args[0]) if args and _is_int(args[0]) else 8
        _bound(len(owner) * size, MAX_RENDERED, "the expanded text's length")
    elif name == "replace" and len(args) >= 2:
        _check_replace(owner, args[0], args[1])
    elif name == "join" and args:
        _check_join(owner, args[0])


def _check_replace(text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        count = text.count(old) if old else len(text) + 1
        size = len(text) + count * (len(new) - len(old))
        _bound(size, MAX_RENDERED, "the replaced text's length")


def _check_join(separator: Any, items: Any) -> None:
    if isinstance(items, list | tuple) and isinstance(separator, str):
        size = sum(len(str(i)) for i in items) + len(separator) * len(items)
        _bound(size, MAX_RENDERED, "the joined text's length")


def _bounded_filter(
    function: Callable[..., Any], check: Callable[[inspect.BoundArguments], None]
) -> Callable[..., Any]:
    signature = inspect.signature(function)

    @functools.wraps(function)  # keeps jinja's pass_eval_context marks
    def bounded(*args: Any, **kwargs: Any) -> Any:
        check(signature.bind(*args, **kwargs))
        return function(*args, **kwargs)

    return bounded


def _limit(name: str, limit: int) -> Callable[[inspect.BoundArguments], None]:
    def check(bound: inspect.BoundArguments) -> None:
        value = bound.arguments.get(name)
        if isinstance(value, int):
            _bound(abs(value), limit, f"'{name}'")

    return check


def _format_filter(bound: inspect.BoundArguments) -> None:
    value = bound.arguments.get("value")
    if isinstance(value, str):
        _check_printf(value)


def _replace_filter(bound: inspect.BoundArguments) -> None:
    args = bound.arguments
    _check_replace(args.get("s"), args.get("old"), args.get("new"))


def _join_filter(bound: inspect.BoundArguments) -> None:
    args = bound.arguments
    _check_join(args.get("d", ""), args.get("value"))


_FILTER_CHECKS: Final[dict[str, Callable[[inspect.BoundArguments], None]]] = {
    "center": _limit("width", MAX_RENDERED),
    "indent": _limit("width", MAX_RENDERED),
    "tojson": _limit("indent", 64),
    "batch": _limit("linecount", MAX_ITEMS),
    "slice": _limit("slices", MAX_ITEMS),
    "format": _format_filter,
    "replace": _replace_filter,
    "join": _join_filter,
}


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox described in the module docstring. Checks a per-thread deadline
    on every attribute access and call, which every loop of a template does, so
    nested loops cannot run for ever."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            finalize=_printable,
        )
        self.globals = {name: self.globals[name] for name in _GLOBALS}
        self.filters["quote"] = _quote
        for name, check in _FILTER_CHECKS.items():
            self.filters[name] = _bounded_filter(self.filters[name], check)
        self.deadline = threading.local()

    def _check(self) -> None:
        deadline = getattr(self.deadline, "at", None)
        if deadline is not None and time.monotonic() > deadline:
            raise RenderError(f"rendering took longer than {MAX_SECONDS:g}s")

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and attr in _STR_FORMAT:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def getattr(self, obj: Any, attribute: str) -> Any:
        self._check()
        if isinstance(obj, str) and attribute in _STR_FORMAT:
            return self.unsafe_undefined(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self._check()
        if isinstance(obj, str) and argument in _STR_FORMAT:
            return self.unsafe_undefined(obj, argument)
        return super().getitem(obj, argument)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        __self._check()
        _check_call(__obj, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self._check()
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)


def _printable(value: Any) -> Any:
    """What ``{{ x }}`` may print: data (a class or a bound method is refused)."""
    if isinstance(value, Undefined):
        return value  # Jinja raises the undefined error itself
    problem = _not_data(value)
    if problem is not None:
        raise RenderError(problem)
    return value


_ENV = _Sandbox()


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
        problem = _not_data(result)
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


def _not_data(value: Any, depth: int = 0) -> str | None:
    """None for JSON data (and placeholders); else what the value is instead."""
    if value is None or isinstance(value, str | bool | int | float | Placeholder):
        return None
    if depth < 64 and isinstance(value, list | tuple):
        return next(filter(None, (_not_data(v, depth + 1) for v in value)), None)
    if depth < 64 and isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            return "evaluated to a mapping whose keys are not all strings, not data"
        found = (_not_data(v, depth + 1) for v in value.values())
        return next(filter(None, found), None)
    return f"evaluated to {_kind(value)}, not data"


def _kind(value: Any) -> str:
    if isinstance(value, type):
        return f"the class {value.__name__!r}"
    if callable(value):
        name = getattr(value, "__qualname__", None) or type(value).__name__
        return f"the function or method {name!r}"
    return f"a Python {type(value).__name__!r} object"


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


# only templates that mention one of these can do what `forbidden` looks for
_SUSPECT = re.compile(r"\.\s*_|\[\s*['\"]_|format|mro|attr|\bself\b")


def forbidden(source: str, *, expression: bool) -> list[str]:
    """What a template tries that the sandbox refuses, found without running it:
    attributes starting with ``_`` (also through ``attr()`` or ``['_x']``),
    ``format`` / ``format_map`` / ``mro`` calls, and Jinja's ``self``. Raises
    TemplateSyntaxError for a broken template."""
    if not _SUSPECT.search(source):
        return []
    tree = parse_expression(source) if expression else parse_template(source)
    found: list[str] = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        name = _attribute_named(node)
        if name is None:
            continue
        if name.startswith("_"):
            problem = f"attribute {name!r}: names starting with '_' are internal"
        elif name in _STR_FORMAT:
            problem = f"{name}(): use the `format` filter or `~` to build text"
        elif name == "mro":
            problem = "mro(): classes are not data"
        else:
            continue
        found.append(f"not allowed in templates: {problem}")
    if any(n.name == "self" for n in tree.find_all(nodes.Name)):
        found.append("not allowed in templates: 'self' (the template object)")
    return list(dict.fromkeys(found))


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
