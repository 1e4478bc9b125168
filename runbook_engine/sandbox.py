"""What a template may do: the Jinja2 environment every runbook template renders in.

- Jinja's immutable sandbox: no attribute starting with ``_``, no ``mro``, no
  frames or code objects, no method that changes a list or dict of the context.
- No ``str.format`` / ``format_map`` (they reach attributes through format fields);
  the ``format`` filter and ``~`` build text instead.
- Only the globals ``range`` (at most :data:`MAX_ITEMS` items) and ``dict``:
  Jinja's ``cycler``, ``joiner``, ``namespace`` and ``lipsum`` are removed; runbooks
  have no use for them and each is one more object to reason about.
- No value grows past the bounds before it is built: ``*``, ``**``, ``+`` and ``%``
  are checked from their operands, and so are the widths and counts given to
  ``center``, ``indent``, ``tojson``, ``batch``, ``slice``, ``replace``, ``join``
  (of any iterable) and the string methods that pad; ``wordwrap`` and ``urlize``,
  slow in pure Python, are bounded by what they are given; a string argument over
  :data:`MAX_RENDERED` stops a call (a macro doubling its argument).
- Filters give plain text, never HTML-safe ``Markup`` (autoescape is off; Markup
  would HTML-escape what is joined to it, quotes included).
- No ``{% autoescape %}`` block: it would HTML-escape quoted shell words.
- ``{{ x }}`` prints only data (:func:`not_data`): a class, a function or Jinja's
  ``self`` is an error, never its repr.
- A render over :data:`MAX_SECONDS` fails (a deadline checked on every attribute
  access, call and operator).

Used by ``render.py``, which owns rendering and the errors; with it and
``spec/lint.py`` the only modules that import ``jinja2``.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import json
import re
import shlex
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from typing import Any, Final

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment

from .errors import RenderError

__all__ = [
    "MAX_INT_BITS",
    "MAX_ITEMS",
    "MAX_RENDERED",
    "MAX_SECONDS",
    "STR_FORMAT",
    "Placeholder",
    "Sandbox",
    "not_data",
]

MAX_RENDERED: Final = 1024 * 1024
"""Most characters one rendered value (or any string built on the way) may have."""
MAX_SECONDS: Final = 2.0
"""Longest a render may take."""
MAX_ITEMS: Final = MAX_RANGE
"""Most items a list built by a template may have (Jinja's own bound for range)."""
MAX_INT_BITS: Final = 4096
"""Largest integer a template may compute, in bits (``2 ** 4096``)."""
MAX_TEXT_FACTOR: Final = 16
"""A list built by ``*`` may hold at most this many times :data:`MAX_RENDERED` of
text."""

STR_FORMAT: Final = frozenset({"format", "format_map"})
_GLOBALS: Final = ("range", "dict")  # what runbooks may call; the rest is removed


_LOOP_FILTER: Final = "runbook_loop_clock"


class _Ticking:
    """A loop's iterable that looks at the clock before every item: a loop over a
    local variable touches no attribute, call or operator, so nothing else would
    stop nested loops of a hundred thousand items."""

    def __init__(self, iterable: Any, check: Callable[[], None]) -> None:
        self._iterable = iterable
        self._check = check

    def __len__(self) -> int:
        return len(self._iterable)

    def __iter__(self) -> Iterator[Any]:
        for item in self._iterable:
            self._check()
            yield item


class Placeholder:
    """A value not known yet (``runbook plan`` shows ``<steps.x.stdout>``): counts as
    data, renders as its ``str``."""


def _quote(value: object) -> str:
    return shlex.quote(as_text(value))


def _plain(function: Callable[..., Any]) -> Callable[..., Any]:
    """The filter, giving plain text where Jinja gives HTML-safe ``Markup``
    (``tojson``, ``e``, ``safe``...). Autoescape is off, so Markup means nothing
    here, and it would HTML-escape whatever is joined to it: ``| tojson | quote``
    would quote with ``&#39;``, which a shell reads as ``&`` and a comment."""

    @functools.wraps(function)  # keeps jinja's pass_context marks
    def plain(*args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        return str(result) if isinstance(result, str) else result  # Markup is a str

    return plain


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
        if not isinstance(sequence, str):  # ['x' * 10**6] * 10**5 prints 100 GB
            text = _text_size(sequence, MAX_RENDERED * MAX_TEXT_FACTOR)
            _bound(text * count, MAX_RENDERED * MAX_TEXT_FACTOR, "the repeated text")


def _text_size(value: Any, limit: int, depth: int = 0) -> int:
    """About how many characters ``value`` holds (stops counting past ``limit``)."""
    if isinstance(value, str):
        return len(value)
    if depth > 32 or not isinstance(value, list | tuple | Mapping):
        return 1
    items = value.items() if isinstance(value, Mapping) else enumerate(value)
    total = 0
    for key, item in items:
        total += _text_size(item, limit, depth + 1) + len(str(key)) // 8
        if total > limit:
            break
    return total


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
    if isinstance(items, Sized) and isinstance(separator, str):
        _bound(len(separator) * len(items), MAX_RENDERED, "the joined text's length")
    if isinstance(items, list | tuple) and isinstance(separator, str):
        size = sum(len(str(i)) for i in items) + len(separator) * len(items)
        _bound(size, MAX_RENDERED, "the joined text's length")


def _bounded_filter(
    function: Callable[..., Any], check: Callable[[inspect.BoundArguments], None]
) -> Callable[..., Any]:
    signature = inspect.signature(function)

    @functools.wraps(function)  # keeps jinja's pass_eval_context marks
    def bounded(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        check(bound)  # may replace a lazy argument by the list it gives
        return function(*bound.args, **bound.kwargs)

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
    items = args.get("value")
    if not isinstance(items, Sized | str) and isinstance(items, Iterable):
        # a generator (``| map(...)``): take what it gives, up to the bound
        items = args["value"] = list(itertools.islice(items, MAX_ITEMS + 1))
        _bound(len(items), MAX_ITEMS, "the number of items joined")
    _check_join(args.get("d", ""), items)


def _wordwrap_filter(bound: inspect.BoundArguments) -> None:
    """Python's textwrap takes seconds to cut a long text into short lines."""
    text, width = bound.arguments.get("s"), bound.arguments.get("width", 79)
    if isinstance(text, str) and isinstance(width, int):
        _bound(len(text) // max(width, 1), _MAX_LINES, "the number of wrapped lines")


def _urlize_filter(bound: inspect.BoundArguments) -> None:
    text = bound.arguments.get("value")
    if isinstance(text, str):
        _bound(len(text), _MAX_SLOW_TEXT, "the text given to urlize")


def _sum_filter(bound: inspect.BoundArguments) -> None:
    """``sum`` adds numbers; summing lists copies them over and over."""
    start = bound.arguments.get("start", 0)
    if not isinstance(start, int | float) or isinstance(start, bool):
        raise _TooBigError("sum adds numbers: join texts, or loop over lists")


_FILTER_CHECKS: Final[dict[str, Callable[[inspect.BoundArguments], None]]] = {
    "center": _limit("width", MAX_RENDERED),
    "indent": _limit("width", MAX_RENDERED),
    "tojson": _limit("indent", 64),
    "batch": _limit("linecount", MAX_ITEMS),
    "slice": _limit("slices", MAX_ITEMS),
    "format": _format_filter,
    "replace": _replace_filter,
    "join": _join_filter,
    "wordwrap": _wordwrap_filter,
    "urlize": _urlize_filter,
    "sum": _sum_filter,
}
_MAX_LINES: Final = 10_000
_MAX_SLOW_TEXT: Final = 64 * 1024


class Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox described in the module docstring. ``deadline.at`` (per thread)
    is checked on every attribute access, call and operator, which every loop of a
    template does, so nested loops cannot run for ever."""

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
        self.filters = {name: _plain(f) for name, f in self.filters.items()}
        self.filters[_LOOP_FILTER] = self._loop
        self.deadline = threading.local()

    def _parse(self, source: str, name: str | None, filename: str | None) -> Any:
        """No ``{% autoescape %}``: it would HTML-escape what ``quote`` made shell-safe
        (``'`` becomes ``&#39;``, which a shell reads as ``&`` and a comment)."""
        tree = super()._parse(source, name, filename)
        for found in tree.find_all(nodes.EvalContextModifier):
            raise TemplateSyntaxError(
                "autoescape is not allowed: templates here make commands, not HTML",
                found.lineno,
                name,
                filename,
            )
        for loop in tree.find_all(nodes.For):  # every item of every loop: the clock
            loop.iter = nodes.Filter(
                loop.iter, _LOOP_FILTER, [], [], None, None, lineno=loop.lineno
            )
        return tree

    def _loop(self, iterable: Any) -> Any:
        return _Ticking(iterable, self._check)

    def _check(self) -> None:
        deadline = getattr(self.deadline, "at", None)
        if deadline is not None and time.monotonic() > deadline:
            raise RenderError(f"rendering took longer than {MAX_SECONDS:g}s")

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and attr in STR_FORMAT:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def getattr(self, obj: Any, attribute: str) -> Any:
        self._check()
        if isinstance(obj, str) and attribute in STR_FORMAT:
            return self.unsafe_undefined(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self._check()
        if isinstance(obj, str) and argument in STR_FORMAT:
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
    """What ``{{ x }}`` may print: data (a class or a bound method is refused), and
    a list or mapping as JSON text, never as a Python repr."""
    if isinstance(value, Undefined):
        return value  # Jinja raises the undefined error itself
    problem = not_data(value)
    if problem is not None:
        raise RenderError(problem)
    return as_text(value) if isinstance(value, list | tuple | Mapping) else value


def as_text(value: Any) -> str:
    """A rendered value as text for a command, an env value or a header: strings as
    they are (plain ``str``, never Markup), lists and mappings as JSON, the rest as
    ``str`` does."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list | tuple | Mapping) and not isinstance(value, Placeholder):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def not_data(value: Any, depth: int = 0) -> str | None:
    """None for JSON data (and placeholders); else what the value is instead."""
    if value is None or isinstance(value, str | bool | int | float | Placeholder):
        return None
    if depth < 64 and isinstance(value, list | tuple):
        return next(filter(None, (not_data(v, depth + 1) for v in value)), None)
    if depth < 64 and isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            return "evaluated to a mapping whose keys are not all strings, not data"
        found = (not_data(v, depth + 1) for v in value.values())
        return next(filter(None, found), None)
    return f"evaluated to {_kind(value)}, not data"


def _kind(value: Any) -> str:
    if isinstance(value, type):
        return f"the class {value.__name__!r}"
    if callable(value):
        name = getattr(value, "__qualname__", None) or type(value).__name__
        return f"the function or method {name!r}"
    return f"a Python {type(value).__name__!r} object"
