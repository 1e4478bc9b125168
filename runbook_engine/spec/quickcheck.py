"""The schema compiled into a plain-Python yes/no check (the subset of keywords our
schemas use), so ``runbook validate`` runs jsonschema only on documents that fail
it, to explain why. A test keeps the two in agreement.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

__all__ = ["Check", "compile_schema"]


Check = Callable[[Any], bool]
_IGNORED: Final = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "title",
        "description",
        "default",
        "examples",
        "then",
        "else",
    }
)


class _UnsupportedSchemaError(Exception):
    """A keyword the quick check does not implement: use jsonschema alone."""


def compile_schema(schema: dict[str, Any]) -> Check | None:
    """The yes/no check of ``schema``; None when it uses a keyword not compiled."""
    try:
        return _Compiler(schema).compile(schema)
    except _UnsupportedSchemaError:
        return None


def _is_integer(x: Any) -> bool:
    if isinstance(x, float):
        return x.is_integer()
    return isinstance(x, int) and not isinstance(x, bool)


_TYPE_CHECKS: Final[dict[str, Check]] = {
    "string": lambda x: isinstance(x, str),
    "integer": _is_integer,
    "number": lambda x: isinstance(x, int | float) and not isinstance(x, bool),
    "boolean": lambda x: isinstance(x, bool),
    "array": lambda x: isinstance(x, list),
    "object": lambda x: isinstance(x, dict),
    "null": lambda x: x is None,
}


def _equal(a: Any, b: Any) -> bool:
    """JSON equality as jsonschema sees it: true is not 1, 1.0 is 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_equal, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | dict) or isinstance(b, list | dict):
        return False
    return bool(a == b)


def _all_of(checks: list[Check]) -> Check:
    if len(checks) == 1:
        return checks[0]

    def check(x: Any) -> bool:
        return all(one(x) for one in checks)

    return check


class _Compiler:
    """Compiles the keywords our schemas use; anything else is unsupported."""

    def __init__(self, root: dict[str, Any]):
        self.root = root
        self.refs: dict[str, Check] = {}

    def compile(self, schema: Any) -> Check:
        if schema is True or schema == {}:
            return lambda x: True
        if schema is False:
            return lambda x: False
        checks = []
        for keyword, value in schema.items():
            if keyword in _IGNORED:
                continue
            make = getattr(self, "_k_" + keyword.lstrip("$"), None)
            if make is None:
                raise _UnsupportedSchemaError(keyword)
            checks.append(make(value, schema))
        return _all_of(checks) if checks else (lambda x: True)

    def _k_ref(self, ref: str, schema: dict[str, Any]) -> Check:
        if not ref.startswith("#/$defs/"):
            raise _UnsupportedSchemaError(ref)
        if ref not in self.refs:
            cell: list[Check] = []
            self.refs[ref] = lambda x: cell[0](x)  # allows recursive refs
            cell.append(self.compile(self.root["$defs"][ref.removeprefix("#/$defs/")]))
            self.refs[ref] = cell[0]
        return self.refs[ref]

    def _k_type(self, value: str | list[str], schema: dict[str, Any]) -> Check:
        names = [value] if isinstance(value, str) else value
        checks = [_TYPE_CHECKS[n] for n in names]
        return checks[0] if len(checks) == 1 else (lambda x: any(c(x) for c in checks))

    def _k_properties(self, value: dict[str, Any], schema: dict[str, Any]) -> Check:
        props = {name: self.compile(sub) for name, sub in value.items()}
        extra = schema.get("additionalProperties", True)
        extra_check = None if extra is False else self.compile(extra)

        def check(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            for key, item in x.items():
                sub = props.get(key)
                if sub is None:
                    if extra_check is None or not extra_check(item):
                        return False
                elif not sub(item):
                    return False
            return True

        return check

    def _k_additionalProperties(self, value: Any, schema: dict[str, Any]) -> Check:
        if "properties" in schema:
            return lambda x: True  # checked together with "properties"
        return self._k_properties({}, schema)

    def _k_required(self, value: list[str], schema: dict[str, Any]) -> Check:
        return lambda x: not isinstance(x, dict) or all(k in x for k in value)

    def _k_propertyNames(self, value: Any, schema: dict[str, Any]) -> Check:
        sub = self.compile(value)
        return lambda x: not isinstance(x, dict) or all(sub(k) for k in x)

    def _k_dependentRequired(
        self, value: dict[str, list[str]], schema: dict[str, Any]
    ) -> Check:
        def check(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            return all(
                all(n in x for n in needs) for k, needs in value.items() if k in x
            )

        return check

    def _k_items(self, value: Any, schema: dict[str, Any]) -> Check:
        sub = self.compile(value)
        return lambda x: not isinstance(x, list) or all(sub(i) for i in x)

    def _k_enum(self, value: list[Any], schema: dict[str, Any]) -> Check:
        if all(isinstance(v, str) for v in value):
            options = frozenset(value)
            return lambda x: isinstance(x, str) and x in options
        return lambda x: any(_equal(x, v) for v in value)

    def _k_const(self, value: Any, schema: dict[str, Any]) -> Check:
        return lambda x: _equal(x, value)

    def _k_pattern(self, value: str, schema: dict[str, Any]) -> Check:
        search = re.compile(value).search
        return lambda x: not isinstance(x, str) or search(x) is not None

    def _k_format(self, value: str, schema: dict[str, Any]) -> Check:
        if value != "regex":
            return lambda x: True  # jsonschema checks only "regex" for us
        return _is_regex

    def _bound(self, ok: Callable[[Any], bool], kind: Callable[[Any], bool]) -> Check:
        return lambda x: not kind(x) or ok(x)

    def _k_minimum(self, value: float, schema: dict[str, Any]) -> Check:
        return self._bound(lambda x: x >= value, _TYPE_CHECKS["number"])

    def _k_maximum(self, value: float, schema: dict[str, Any]) -> Check:
        return self._bound(lambda x: x <= value, _TYPE_CHECKS["number"])

    def _k_minLength(self, value: int, schema: dict[str, Any]) -> Check:
        return self._bound(lambda x: len(x) >= value, _TYPE_CHECKS["string"])

    def _k_maxLength(self, value: int, schema: dict[str, Any]) -> Check:
        return self._bound(lambda x: len(x) <= value, _TYPE_CHECKS["string"])

    def _k_minItems(self, value: int, schema: dict[str, Any]) -> Check:
        return self._bound(lambda x: len(x) >= value, _TYPE_CHECKS["array"])

    def _k_maxItems(self, value: int, schema: dict[str, Any]) -> Check:
        return self._bound(lambda x: len(x) <= value, _TYPE_CHECKS["array"])

    def _k_minProperties(self, value: int, schema: dict[str, Any]) -> Check:
        return self._bound(lambda x: len(x) >= value, _TYPE_CHECKS["object"])

    def _k_allOf(self, value: list[Any], schema: dict[str, Any]) -> Check:
        return _all_of([self.compile(sub) for sub in value])

    def _k_anyOf(self, value: list[Any], schema: dict[str, Any]) -> Check:
        subs = [self.compile(sub) for sub in value]
        return lambda x: any(sub(x) for sub in subs)

    def _k_oneOf(self, value: list[Any], schema: dict[str, Any]) -> Check:
        subs = [self.compile(sub) for sub in value]
        return lambda x: sum(1 for sub in subs if sub(x)) == 1

    def _k_not(self, value: Any, schema: dict[str, Any]) -> Check:
        sub = self.compile(value)
        return lambda x: not sub(x)

    def _k_if(self, value: Any, schema: dict[str, Any]) -> Check:
        test = self.compile(value)
        then = self.compile(schema.get("then", True))
        otherwise = self.compile(schema.get("else", True))
        return lambda x: then(x) if test(x) else otherwise(x)


def _is_regex(x: Any) -> bool:
    if not isinstance(x, str):
        return True
    try:
        re.compile(x)
    except re.error:
        return False
    return True
