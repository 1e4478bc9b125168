"""Build data and positions from PyYAML's event stream: the part of the loader that
talks to ``yaml`` (the only module that imports it).

libyaml (when present) only *parses*; we build the data from its event stream with
an explicit stack, never with PyYAML's recursive composer, so a hostile file can
neither blow the C stack nor expand aliases without bound. Aliases are replayed from
the recorded events of their anchor, so every value has its own path and position.

Problems come in two kinds. *Recoverable* ones (a duplicate key, a key that is not a
string, a merge key, an unsupported tag) drop or keep the one value concerned and
reading goes on, so later checks still see the rest of the file. *Fatal* ones (a
syntax error, more than one document, an alias bomb, nesting deeper than
:data:`MAX_DEPTH`) stop reading: what was built so far is not trustworthy.

``spec/loader.py`` is the public face of this; nothing else imports this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode

from ..diagnostics import Diagnostic
from .explain import explain_plain_scalar, reading

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    _SafeLoader = yaml.SafeLoader
else:
    # libyaml parses ~10x faster; positions are the same (we only use events)
    _SafeLoader = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
    "MAX_NODES",
    "Built",
    "Mark",
    "NodePath",
    "build",
]

MAX_DEPTH: Final = 64
"""Deepest nesting of mappings and lists accepted (a runbook needs about 6)."""
MAX_NODES: Final = 1_000_000
"""Most keys and values a document may hold, aliases expanded."""
MAX_ALIAS_NODES: Final = 10_000
"""Most nodes that aliases (``*name``) may produce in one document."""

NodePath = tuple[str | int, ...]


class Mark(Protocol):
    """Where a node starts, 0-based (a libyaml or PyYAML mark; converted lazily)."""

    @property
    def line(self) -> int: ...
    @property
    def column(self) -> int: ...


_TAG: Final = "tag:yaml.org,2002:"
_STR: Final = _TAG + "str"
_INT: Final = _TAG + "int"
_SCALAR_TAGS: Final = frozenset(
    _TAG + name for name in ("int", "float", "bool", "null", "timestamp")
)


@dataclass(slots=True)
class Built:
    """What reading one document gave: the data (None when nothing was read),
    where each key and value starts, the text of unquoted non-strings, and the
    problems found. ``fatal``: reading stopped early, the data is not to be used."""

    data: Any
    keys: dict[NodePath, Mark] = field(default_factory=dict)
    values: dict[NodePath, Mark] = field(default_factory=dict)
    sources: dict[NodePath, str] = field(default_factory=dict)
    problems: list[Diagnostic] = field(default_factory=list)
    fatal: bool = False


def build(name: str, text: str, *, json: bool = False) -> Built:
    """Read ``text`` (named ``name`` in diagnostics). ``json``: numbers with an
    exponent but no dot (``1e3``) are numbers, as JSON says."""
    builder = _Builder(name, text, (_JSONLoader if json else _Loader)(text))
    try:
        data = builder.build()
    finally:
        builder.loader.dispose()
    # an alias replays its anchor's problems at the same place: report once
    problems = sorted(
        set(builder.diagnostics), key=lambda d: (d.line, d.col, d.message)
    )
    return Built(
        data, builder.keys, builder.values, builder.sources, problems, builder.fatal
    )


class _Loader(_SafeLoader):
    """PyYAML's safe loader, used only for its parser (events), its YAML 1.1
    resolver and its scalar constructors; never for its composer."""


class _JSONLoader(_Loader):
    """Reads JSON numbers with an exponent but no dot (``1e3``) as numbers."""


_JSONLoader.add_implicit_resolver(
    _TAG + "float",
    re.compile(r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?[eE][-+]?[0-9]+$"),
    list("-0123456789"),
)


_MAPPING_VALUES_HINT: Final = (
    "; a value containing ': ' must be quoted, e.g. run: \"echo a: b\""
)


def _syntax_diagnostic(name: str, text: str, exc: yaml.YAMLError) -> Diagnostic:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        lines = text.splitlines()
        line_text = lines[mark.line] if mark.line < len(lines) else ""
        if line_text[mark.column : mark.column + 1] == "\t":
            message = "a tab character here: indent YAML with spaces, not tabs"
        else:
            message = str(exc.problem)
            if exc.context and exc.context_mark is not None:
                message += f" ({exc.context} at line {exc.context_mark.line + 1})"
            elif exc.context:
                message += f" ({exc.context})"
            if "mapping values are not allowed" in message:
                message += _MAPPING_VALUES_HINT
        return Diagnostic(
            name, mark.line + 1, mark.column + 1, f"YAML syntax error: {message}"
        )
    position = getattr(exc, "position", 0) or 0
    line = text.count("\n", 0, position) + 1
    col = position - (text.rfind("\n", 0, position) + 1) + 1
    reason = getattr(exc, "reason", None) or str(exc)
    return Diagnostic(name, line, col, f"YAML syntax error: {reason}")


# --------------------------------------------------------------------------- #
# building data from events


class _LimitError(Exception):
    """A bound was exceeded: stop reading, the rest is not worth the risk."""

    def __init__(self, message: str, mark: Mark):
        super().__init__(message)
        self.line = mark.line + 1
        self.col = mark.column + 1


_EXPECT_KEY: Final = object()
_DISCARD: Final = object()


@dataclass(slots=True)
class _Frame:
    """An open mapping or list. ``container`` is None while discarding (the
    value of a duplicate or invalid key): its content is dropped unread."""

    container: dict[str, Any] | list[Any] | None
    path: NodePath
    key: object = _EXPECT_KEY
    anchor: str | None = None
    anchor_start: int = 0


class _Builder:
    """Turns the parser's event stream into data, positions and diagnostics.

    Aliases are replayed from the recorded events of their anchor, so every
    value has its own path and position, and every replayed node is counted
    against :data:`MAX_ALIAS_NODES`.
    """

    def __init__(self, name: str, text: str, loader: _Loader):
        self.name = name
        self.text = text
        self.loader = loader
        self.keys: dict[NodePath, Mark] = {}
        self.values: dict[NodePath, Mark] = {}
        self.sources: dict[NodePath, str] = {}
        self.diagnostics: list[Diagnostic] = []
        self._tags: dict[str, str] = {}
        self._recorded: list[Event] = []
        self._anchors: dict[str, tuple[int, int]] = {}
        self._open_anchors: dict[str, int] = {}
        self._stack: list[_Frame] = []
        self._replays: list[Iterator[Event]] = []
        self._alias_sites: list[Any] = []
        self._root: Any = None
        self._documents = 0
        self._nodes = 0
        self._alias_nodes = 0
        self.fatal = False

    def build(self) -> Any:
        try:
            self._run()
        except yaml.YAMLError as exc:
            self.fatal = True
            self.diagnostics.append(_syntax_diagnostic(self.name, self.text, exc))
        except _LimitError as exc:
            self.fatal = True
            self.diagnostics.append(Diagnostic(self.name, exc.line, exc.col, str(exc)))
        return self._root

    def _run(self) -> None:
        get_event: Callable[[], Any] = self.loader.get_event
        record = self._recorded.append
        while True:
            if self._replays:
                event = self._next_replayed()
                if event is None:
                    continue
            else:
                event = get_event()
                record(event)
            kind = type(event)
            if kind is ScalarEvent:
                self._on_scalar(event)
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                self._on_collection_start(event)
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                self._on_collection_end()
            elif kind is AliasEvent:
                self._on_alias(event)
            elif kind is DocumentStartEvent:
                self._on_document_start(event)
            elif kind is StreamEndEvent:
                return

    def _next_replayed(self) -> Any:
        try:
            return next(self._replays[-1])
        except StopIteration:
            self._replays.pop()
            self._alias_sites.pop()
            return None

    def _on_document_start(self, event: Any) -> None:
        self._documents += 1
        if self._documents > 1:
            raise _LimitError(
                "expected one YAML document, found another", event.start_mark
            )

    def _report(self, event: Any, message: str) -> None:
        mark = event.start_mark
        self.diagnostics.append(
            Diagnostic(self.name, mark.line + 1, mark.column + 1, message)
        )

    # -- where a node goes -----------------------------------------------------

    def _claim(self, event: Any) -> NodePath | None:
        """The path of the slot this node fills, or None when it is dropped or
        was a key (then handled here)."""
        if not self._stack:
            return ()
        parent = self._stack[-1]
        container = parent.container
        if container.__class__ is list:
            return (*parent.path, len(container))
        if container is None:
            return None
        key = parent.key
        if key is _EXPECT_KEY:
            self._on_key(event, parent)
            return None
        parent.key = _EXPECT_KEY
        if key is _DISCARD:
            return None
        return (*parent.path, key)  # type: ignore[arg-type]

    def _put(self, path: NodePath, value: Any, event: Any) -> None:
        self._nodes += 1
        if self._replays or self._nodes > MAX_NODES:
            self._check_limits(event)
        self.values[path] = event.start_mark
        if not self._stack:
            self._root = value
            return
        container = self._stack[-1].container
        if container.__class__ is list:
            container.append(value)
        else:
            container[path[-1]] = value  # type: ignore[index]

    def _check_limits(self, event: Any) -> None:
        if self._nodes > MAX_NODES:
            message = f"document too large: more than {MAX_NODES} values"
            raise _LimitError(message, event.start_mark)
        if self._replays:
            self._alias_nodes += 1
            if self._alias_nodes > MAX_ALIAS_NODES:
                raise _LimitError(
                    f"aliases expand to more than {MAX_ALIAS_NODES} values"
                    " (an alias bomb?); write the values out",
                    self._alias_sites[0].start_mark,
                )

    # -- event handlers ----------------------------------------------------------

    def _on_scalar(self, event: Any) -> None:
        path = self._claim(event)
        if event.anchor is not None and not self._replays:
            index = len(self._recorded) - 1
            self._anchors[event.anchor] = (index, index)
        if path is None:
            return
        value = self._scalar(event)
        self._put(path, value, event)
        if value.__class__ is not str and event.implicit[0]:
            self.sources[path] = event.value

    def _on_key(self, event: Any, parent: _Frame) -> None:
        parent.key = _DISCARD
        if event.__class__ is not ScalarEvent:
            self._report(event, "keys must be strings, not a mapping or a list")
            return
        key = self._scalar(event)
        plain = event.tag is None and event.implicit[0]
        path = (*parent.path, key)
        if key.__class__ is not str:
            why = explain_plain_scalar(event.value, key) if plain else reading(key)
            self._report(event, f"keys must be strings: {why}")
        elif path in self.keys:
            first = self.keys[path].line + 1
            self._report(
                event, f"duplicate key {key!r} (first defined at line {first})"
            )
        elif plain and key == "<<":
            self._report(
                event, "merge keys ('<<') are not supported: write the keys out"
            )
        else:
            parent.key = key
            mark: Any = event.start_mark  # a libyaml Mark: not in PyYAML's stubs
            self.keys[path] = mark

    def _on_collection_start(self, event: Any) -> None:
        is_map = type(event) is MappingStartEvent
        path = self._claim(event)
        self._check_tag(event, _TAG + ("map" if is_map else "seq"))
        if len(self._stack) >= MAX_DEPTH:
            raise _LimitError(
                f"nested deeper than {MAX_DEPTH} levels", event.start_mark
            )
        container: dict[str, Any] | list[Any] | None = None
        if path is not None:
            container = {} if is_map else []
            self._put(path, container, event)
        frame = _Frame(container, path or ())
        if event.anchor is not None and not self._replays:
            frame.anchor = event.anchor
            frame.anchor_start = len(self._recorded) - 1
            self._open_anchors[event.anchor] = (
                self._open_anchors.get(event.anchor, 0) + 1
            )
            self._anchors.pop(event.anchor, None)
        self._stack.append(frame)

    def _on_collection_end(self) -> None:
        frame = self._stack.pop()
        if frame.anchor is not None:
            self._anchors[frame.anchor] = (frame.anchor_start, len(self._recorded) - 1)
            self._open_anchors[frame.anchor] -= 1

    def _on_alias(self, event: Any) -> None:
        parent = self._stack[-1] if self._stack else None
        if parent is not None and parent.container is None:
            return
        if parent is not None and parent.container.__class__ is dict:
            if parent.key is _EXPECT_KEY:
                parent.key = _DISCARD
                self._report(event, "keys must be strings, not an alias")
                return
            if parent.key is _DISCARD:
                parent.key = _EXPECT_KEY
                return
        self._replay(event)

    def _replay(self, event: Any) -> None:
        name = event.anchor
        if self._open_anchors.get(name):
            raise _LimitError(
                f"alias *{name} refers to a node that contains it", event.start_mark
            )
        span = self._anchors.get(name)
        if span is None:
            raise _LimitError(
                f"alias *{name} has no anchor &{name} before it", event.start_mark
            )
        start, end = span
        self._replays.append(iter(self._recorded[start : end + 1]))
        self._alias_sites.append(event)

    # -- scalars -------------------------------------------------------------------

    def _scalar(self, event: Any) -> Any:
        tag = event.tag
        if tag is None:
            text = event.value
            if not event.implicit[0]:
                return text
            tag = self._tags.get(text)
            if tag is None:
                tag = self._resolve(text)
                self._tags[text] = tag
            if tag not in _SCALAR_TAGS:  # str, and '<<' / '=' read as text
                return text
            if tag == _INT and text.isdecimal() and text[0] != "0":
                return int(text)  # the common case, without PyYAML's node
        elif tag == _STR or tag == "!":
            return event.value
        elif tag not in _SCALAR_TAGS:
            self._report(event, f"unsupported tag {tag.replace(_TAG, '!!')}")
            return event.value
        return self._construct(event, tag)

    def _resolve(self, text: str) -> str:
        resolve: Callable[..., str] = self.loader.resolve
        return resolve(ScalarNode, text, (True, False))

    def _construct(self, event: Any, tag: str) -> Any:
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark)
        try:
            return SafeConstructor.yaml_constructors[tag](self.loader, node)
        except (ValueError, TypeError, OverflowError, yaml.YAMLError):
            shown = tag.replace(_TAG, "!!")
            self._report(event, f"cannot read {event.value!r} as {shown}")
            return event.value

    def _check_tag(self, event: Any, expected: str) -> None:
        tag = event.tag
        if tag is not None and tag != "!" and tag != expected:
            self._report(event, f"unsupported tag {tag.replace(_TAG, '!!')}")
