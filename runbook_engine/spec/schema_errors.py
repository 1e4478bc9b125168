"""jsonschema's errors about one document, written for humans at the offending key
or value: "step 'migrate': unknown key 'retires' (did you mean 'retries'?)", never a
raw jsonschema dump. anyOf/oneOf noise collapses to the branch that matches the
value's type.

Used by ``spec/schema.py`` (the module that runs jsonschema); errors arrive here as
objects, so this module needs no import of jsonschema.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import TYPE_CHECKING, Any, Final

from ..diagnostics import Diagnostic
from .explain import describe_value, explain_plain_scalar

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from .loader import Document, NodePath

ValidationError = Any  # jsonschema.exceptions.ValidationError (untyped upstream)

__all__ = ["STEP_LISTS", "Explainer", "get"]

STEP_LISTS: Final = frozenset(
    {"preconditions", "steps", "verify", "rollback", "finally", "batch_gate"}
)
# top-level maps whose entries are named things: "param 'version': ..."
_NAMED: Final = {
    "params": "param",
    "secrets": "secret",
    "hosts": "host",
    "groups": "group",
}
# what a schema ``title`` means, for pattern and "must be" messages
_MEANINGS: Final = {
    "duration": "a duration like 250ms, 30s, 5m or 1h, or a number of seconds",
    "step id": "a step id: lowercase letters, digits and _, starting with a letter",
    "runbook name": (
        "a runbook name: lowercase letters, digits, _ and -, starting with a letter"
        " or digit"
    ),
    "file mode": "an octal file mode like '0644'",
    "lock name": (
        "a lock name: letters, digits, '.', '_' and '-', starting with a letter"
        " or digit"
    ),
    "batch size": "a number of hosts (1 or more) or a percentage like '25%'",
    "expression": "a Jinja expression without braces, like params.env == 'prod'",
    "user name": (
        "a POSIX user name (letters, digits, '_', '.', '-', not starting with '-'"
        " or a digit)"
    ),
    "host address": "a host name (letters, digits, '-', '_', '.') or an IP address",
    "host name": "letters, digits, '_', '.' and '-', starting with a letter or digit",
    "group name": "letters, digits, '_', '.' and '-', starting with a letter or digit",
    "host or group name": (
        "a host or group name: letters, digits, '_', '.' and '-', starting with a"
        " letter or digit"
    ),
}
_IDENTIFIER_MEANING: Final = "letters, digits and _, not starting with a digit"
_TYPE_NOUNS: Final = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


# --------------------------------------------------------------------------- #
# explaining one error


class Explainer:
    """Turns jsonschema errors about one document into Diagnostics."""

    def __init__(self, doc: Document, schema_name: str = "runbook"):
        self.doc = doc
        self.positions = doc.positions
        self.schema_name = schema_name

    def explain(self, error: ValidationError) -> list[Diagnostic]:
        out: list[Diagnostic] = []
        for leaf, title in _collapse(error, None):
            out.extend(self._explain_leaf(leaf, title))
        return out

    def _explain_leaf(
        self, error: ValidationError, title: str | None
    ) -> list[Diagnostic]:
        path: NodePath = tuple(error.absolute_path)
        if "propertyNames" in error.relative_schema_path:
            return [self._bad_name(error, path)]
        handler = getattr(self, f"_on_{error.validator}", None)
        if handler is not None:
            result: list[Diagnostic] = handler(error, path, title)
            return result
        return [self._at_value(path, f"{self.subject(path)}{error.message}")]

    # -- wording helpers ------------------------------------------------------

    def _head(self, path: NodePath) -> tuple[str, NodePath]:
        """("step 'migrate': ", path inside the step) for a path."""
        data = self.doc.data
        if len(path) >= 2 and path[0] in STEP_LISTS and isinstance(path[1], int):
            step = get(data, path[:2])
            step_id = step.get("id") if isinstance(step, dict) else None
            if isinstance(step_id, str) and step_id:
                return f"step {step_id!r}: ", path[2:]
            return f"step #{path[1] + 1} in {path[0]!r}: ", path[2:]
        section = path[0] if path else None
        if len(path) >= 2 and isinstance(section, str) and isinstance(path[1], str):
            label = _NAMED.get(section)
            if label and isinstance(get(data, path[:1]), dict):
                return f"{label} {path[1]!r}: ", path[2:]
        return "", path

    def subject(self, path: NodePath) -> str:
        """ "step 'x': 'copy.mode' " -- ready to be followed by a predicate."""
        head, inner = self._head(path)
        return f"{head}{_field(inner)!r} " if inner else head

    def _at_value(self, path: NodePath, message: str) -> Diagnostic:
        return Diagnostic.at(self.positions.value(path), message)

    def _at_key(self, path: NodePath, message: str) -> Diagnostic:
        return Diagnostic.at(self.positions.key(path), message)

    # -- one handler per jsonschema keyword -----------------------------------

    def _on_type(
        self, error: ValidationError, path: NodePath, title: str | None
    ) -> list[Diagnostic]:
        expected = error.validator_value
        wanted = [expected] if isinstance(expected, str) else list(expected)
        noun = _MEANINGS.get(title or "", title) or " or ".join(
            _TYPE_NOUNS.get(t, t) for t in wanted
        )
        return [self._must_be(path, noun, error.instance, "string" in wanted)]

    def _must_be(
        self, path: NodePath, noun: str, value: object, wants_string: bool
    ) -> Diagnostic:
        source = self.positions.source_text(path)
        if wants_string and source is not None:
            detail = f": {explain_plain_scalar(source, value)}"
        else:
            detail = f", not {_kind(value)}"
        return self._at_value(path, f"{self.subject(path)}must be {noun}{detail}")

    def _on_anyOf(
        self, error: ValidationError, path: NodePath, title: str | None
    ) -> list[Diagnostic]:
        # every branch rejected the value's type: say what would be accepted
        nouns: list[str] = []
        for sub in error.context or []:
            if sub.validator == "type":
                wanted = sub.validator_value
                for t in [wanted] if isinstance(wanted, str) else wanted:
                    noun = _TYPE_NOUNS.get(t, t)
                    if noun not in nouns:
                        nouns.append(noun)
        wants_string = "a string" in nouns
        noun = _MEANINGS.get(title or "", title) or " or ".join(nouns)
        return [self._must_be(path, noun, error.instance, wants_string)]

    def _on_oneOf(
        self, error: ValidationError, path: NodePath, title: str | None
    ) -> list[Diagnostic]:
        if not _is_exactly_one(error.validator_value):
            return self._on_anyOf(error, path, title)
        return self._exactly_one(error, path)

    def _exactly_one(self, error: ValidationError, path: NodePath) -> list[Diagnostic]:
        choices = [branch["required"][0] for branch in error.validator_value]
        instance = error.instance
        if not isinstance(instance, dict):
            return []  # the type error says it all
        present = [key for key in choices if key in instance]
        if not present and _has_typo_of(instance, error.schema, choices):
            return []  # the unknown-key diagnostic already says "did you mean"
        if "run" in choices:
            need = f"needs exactly one action ({', '.join(choices)})"
        else:
            need = f"needs exactly one of {_join(choices, 'or')}"
        found = _join(present, "and") if present else "none"
        message = f"{self.subject(path)}{need}, found {found}"
        if len(present) > 1:
            return [self._at_key((*path, present[1]), message)]
        return [self._at_value(path, message)]

    def _on_additionalProperties(
        self, error: ValidationError, path: NodePath, title: str | None
    ) -> list[Diagnostic]:
        if not isinstance(error.instance, dict):
            return []
        known = list(error.schema.get("properties", {}))
        head, inner = self._head(path)
        where = f" in {_field(inner)!r}" if inner else ""
        out = []
        for key in error.instance:
            if key in known or not isinstance(key, str):
                continue
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            message = f"{head}unknown key {key!r}{where}{hint}"
            out.append(self._at_key((*path, key), message))
        return out

    def _on_required(
        self, error: ValidationError, path: NodePath, title: str | None
    ) -> list[Diagnostic]:
        instance = error.instance if isinstance(error.instance, dict) else {}
        out = []
        for key in error.validator_value:
            if key not in instance:
                predicate = f"missing required key {key!r}"
                head, inner = self._head(path)
                if inner:
                    predicate = f"{_field(inner)!r} is {predicate}"
                out.append(self._at_value(path, head + predicate))
        return out

    def _on_enum(
        self, error: ValidationError, path: NodePath, title: str | None
    ) -> list[Diagnostic]:
        options = [str(o) for o in error.validator_value]
        value = error.instance
        allowed = ", ".join(options)
        message = f"{self.subject(path)}must be one of {allowed}; got {_show(value)}"
        source = self.positions.source_text(path)
        if source is not None and source in options:
            message += f" ({explain_plain_scalar(source, value)})"
        elif isinstance(value, str):
            upper = [o for o in options if o.lower() == value.lower()]
            close = upper or difflib.get_close_matches(value, options, n=1, cutoff=0.6)
            if close:
                message += f" (did you mean {close[0]!r}?)"
        return [self._at_value(path, message)]

    def _on_const(
        self, error: ValidationError, path: NodePath, title: str | None
    ) -> list[Diagnostic]:
        want = json.dumps(error.validator_value)
        message = f"{self.subject(path)}must be {want}, got {_show(error.instance)}"
        return [self._at_value(path, message)]

    def _on_pattern(
        self, error: ValidationError, path: NodePath, title: str | None
    ) -> list[Diagnostic]:
        title = error.schema.get("title") or title
        meaning = _MEANINGS.get(title or "") or f"text matching {error.validator_value}"
        message = f"{self.subject(path)}must be {meaning}, got {_show(error.instance)}"
        return [self._at_value(path, message)]

    def _on_format(
        self, error: ValidationError, path: NodePath, title: str | None
    ) -> list[Diagnostic]:
        try:
            re.compile(str(error.instance))
            reason = "not a valid regular expression"
        except re.error as exc:
            reason = f"not a valid regular expression ({exc})"
        return [self._at_value(path, f"{self.subject(path)}is {reason}")]

    def _on_minimum(
        self, error: ValidationError, path: NodePath, title: str | None
    ) -> list[Diagnostic]:
        got = _show(error.instance)
        message = (
            f"{self.subject(path)}must be at least {error.validator_value}, got {got}"
        )
        return [self._at_value(path, message)]

    def _on_maximum(
        self, error: ValidationError, path: NodePath, title: str | None
    ) -> list[Diagnostic]:
        bound = error.validator_value
        message = (
            f"{self.subject(path)}must be at most {bound}, got {_show(error.instance)}"
        )
        return [self._at_value(path, message)]

    def _on_minItems(
        self, error: ValidationError, path: NodePath, title: str | None
    ) -> list[Diagnostic]:
        count = error.validator_value
        need = (
            "must not be empty" if count == 1 else f"must have at least {count} items"
        )
        return [self._at_value(path, f"{self.subject(path)}{need}")]

    def _on_minLength(
        self, error: ValidationError, path: NodePath, title: str | None
    ) -> list[Diagnostic]:
        return [self._at_value(path, f"{self.subject(path)}must not be empty")]

    _on_minProperties = _on_minLength

    def _on_dependentRequired(
        self, error: ValidationError, path: NodePath, title: str | None
    ) -> list[Diagnostic]:
        head, _ = self._head(path)
        out = []
        for key, needs in error.validator_value.items():
            missing = [n for n in needs if n not in error.instance]
            if key in error.instance and missing:
                needed = _join([repr(n) for n in missing], "and")
                message = f"{head}{key!r} is only allowed together with {needed}"
                out.append(self._at_key((*path, key), message))
        return out

    def _on_not(
        self, error: ValidationError, path: NodePath, title: str | None
    ) -> list[Diagnostic]:
        keys = error.validator_value.get("required")
        if not keys:
            return [self._at_value(path, f"{self.subject(path)}is not allowed here")]
        head, _ = self._head(path)
        message = (
            f"{head}{_join([repr(k) for k in keys], 'and')} cannot be used together"
        )
        return [self._at_key((*path, keys[-1]), message)]

    def _bad_name(self, error: ValidationError, path: NodePath) -> Diagnostic:
        name = error.instance
        title = str(error.schema.get("title") or "name")
        meaning = _MEANINGS.get(title, _IDENTIFIER_MEANING)
        head, inner = self._head(path)
        where = f" in {_field(inner)!r}" if inner else ""
        message = f"{head}{name!r}{where} is not a valid {title}: use {meaning}"
        return self._at_key((*path, name), message)


# --------------------------------------------------------------------------- #
# collapsing anyOf / oneOf


def _collapse(
    error: ValidationError, title: str | None
) -> Iterator[tuple[ValidationError, str | None]]:
    """The errors worth showing for ``error``: for anyOf/oneOf, those of the
    branch that accepts the value's type (all of them); the anyOf/oneOf error
    itself when no branch accepts the type."""
    if error.validator not in ("anyOf", "oneOf") or not error.context:
        yield error, title
        return
    if error.validator == "oneOf" and _is_exactly_one(error.validator_value):
        yield error, title
        return
    title = error.schema.get("title", title)
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    for index in sorted(branches):
        errors = branches[index]
        if not any(_rejects_type(sub) for sub in errors):
            for sub in errors:
                # the title names the value itself, not what is inside it
                yield from _collapse(sub, None if sub.relative_path else title)
            return
    yield error, title


def _rejects_type(error: ValidationError) -> bool:
    """Does this branch error say "wrong type" about the value itself? A nested
    anyOf/oneOf does when every one of its branches does."""
    if error.relative_path:
        return False
    if error.validator == "type":
        return True
    if error.validator not in ("anyOf", "oneOf") or not error.context:
        return False
    if _is_exactly_one(error.validator_value):
        return False
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    return all(any(_rejects_type(e) for e in errs) for errs in branches.values())


def _is_exactly_one(branches: object) -> bool:
    return isinstance(branches, list) and all(
        isinstance(b, dict) and list(b) == ["required"] and len(b["required"]) == 1
        for b in branches
    )


def _has_typo_of(
    instance: dict[str, Any], schema: dict[str, Any], choices: Sequence[str]
) -> bool:
    known = schema.get("properties", {})
    unknown = [k for k in instance if isinstance(k, str) and k not in known]
    return any(difflib.get_close_matches(k, choices, n=1, cutoff=0.6) for k in unknown)


# --------------------------------------------------------------------------- #
# small wording helpers


def get(data: Any, path: NodePath) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _field(path: NodePath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _join(items: Sequence[str], word: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {word} {items[-1]}"


_kind = describe_value


def _show(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    return (
        json.dumps(value)
        if isinstance(value, int | float | bool | None)
        else _kind(value)
    )
