"""Secret values and the masker that hides them in every text we write.

A secret's raw value is read from its source (an environment variable or a file) at
start and only ever leaves this process inside a rendered command or env value. Every
other text (console, audit log, state, reports, errors) goes through ``Masker.mask``.

Masked forms: the raw value, its shell-quoted form (``| quote``), its JSON-escaped form
(``| tojson``, or inside a JSON document), its URL-encoded forms and its Python repr
(as in an exception message or a traceback). A transformation the
command computes itself (base64, hashing, reversing) cannot be recognised and is not
masked: hand secrets to commands through ``env`` and do not print them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import SecretError

MASK = "***"
MIN_SAFE_LENGTH = 4


@dataclass(frozen=True, slots=True)
class SecretSource:
    """Where a declared secret comes from: exactly one of ``env`` and ``file``."""

    name: str
    env: str | None = None
    file: str | None = None

    def describe(self) -> str:
        return f"env {self.env}" if self.env else f"file {self.file}"


def read_secrets(sources: Iterable[SecretSource]) -> tuple[dict[str, str], list[str]]:
    """Read every secret. Returns (values, warnings); a missing one raises SecretError
    naming the secret and its source, never a value."""
    values: dict[str, str] = {}
    warnings: list[str] = []
    for source in sources:
        value = _read_one(source)
        if len(value) < MIN_SAFE_LENGTH:
            warnings.append(
                f"secret {source.name!r} is shorter than {MIN_SAFE_LENGTH} characters:"
                " it is not masked in output (masking it would hide ordinary text)"
            )
        values[source.name] = value
    return values, warnings


def _read_one(source: SecretSource) -> str:
    if source.env is not None:
        value = os.environ.get(source.env)
        if value is None or value == "":
            raise SecretError(
                f"secret {source.name!r}: environment variable {source.env} is not set"
            )
        return value
    assert source.file is not None
    path = Path(source.file).expanduser()
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        cause = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SecretError(
            f"secret {source.name!r}: cannot read {path}: {cause}"
        ) from None
    if not value:
        raise SecretError(f"secret {source.name!r}: file {path} is empty")
    return value


def _forms(value: str) -> set[str]:
    return {
        value,
        shlex.quote(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        repr(value)[1:-1],  # tracebacks and exception messages show reprs
    }


class Masker:
    """Replaces every known form of every secret with ``***``."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for value in values:
            if len(value) >= MIN_SAFE_LENGTH:
                forms |= _forms(value)
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(re.escape(form) for form in ordered))
            if ordered
            else None
        )
        self.longest = len(ordered[0]) if ordered else 0

    @classmethod
    def of(cls, secrets: Mapping[str, str]) -> Masker:
        return cls(secrets.values())

    @property
    def active(self) -> bool:
        return self._pattern is not None

    def mask(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def mask_data(self, value: object) -> object:
        """Mask every string inside nested dicts / lists (for records and state)."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, Mapping):
            return {self.mask(str(k)): self.mask_data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.mask_data(v) for v in value]
        return value
