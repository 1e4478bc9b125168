"""Secret values and the masker that hides them in every text we write.

A secret's raw value is read from its source (an environment variable, a file, or the
output of a command such as ``vault kv get`` / ``pass show`` / ``sops -d`` run on the
control machine) at start and only ever leaves this process inside a rendered command
or env value. Every
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
import subprocess
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SecretError

MASK = "***"
MIN_SAFE_LENGTH = 4
COMMAND_TIMEOUT = 60.0  # seconds a secret manager may take (it may ask for a PIN)
_STDERR_SHOWN = 2000  # characters of a failed command's stderr in the error


@dataclass(frozen=True, slots=True)
class SecretSource:
    """Where a declared secret comes from: exactly one of ``env``, ``file`` and
    ``command`` (argv, run in ``cwd``). ``optional``: missing is the empty string."""

    name: str
    env: str | None = None
    file: str | None = None
    command: tuple[str, ...] | None = None
    optional: bool = False
    cwd: str | None = field(default=None, compare=False)  # the runbook's directory

    def describe(self) -> str:
        if self.env:
            return f"env {self.env}"
        if self.command:
            return f"command {shlex.join(self.command)}"
        return f"file {self.file}"


def read_secrets(
    sources: Iterable[SecretSource],
) -> tuple[dict[str, str], list[str], list[str]]:
    """Read every secret. Returns (values, warnings, absent): missing ones raise
    one SecretError naming each secret and its source (all of them, in one pass),
    never a value; an optional one reads as "" and ``absent`` says why (shown with
    -v, always audited)."""
    values: dict[str, str] = {}
    warnings: list[str] = []
    absent: list[str] = []
    missing: list[str] = []
    for source in sources:
        try:
            value = _read_one(source, Masker(values.values()))
        except SecretError as exc:
            if not source.optional:
                missing.append(str(exc))
                continue
            absent.append(f"optional {exc}: empty")
            values[source.name] = ""
            continue
        if len(value) < MIN_SAFE_LENGTH:
            warnings.append(
                f"secret {source.name!r} is shorter than {MIN_SAFE_LENGTH} characters:"
                " it is not masked in output (masking it would hide ordinary text)"
            )
        values[source.name] = value
    if missing:
        raise SecretError("\n".join(missing))
    return values, warnings, absent


def peek_secrets(sources: Iterable[SecretSource]) -> list[str]:
    """The values that can be read without running anything (``env:`` and
    ``file:`` sources; none that is missing): what a plan, which reads no secret,
    still masks (a template may print ``env.NAME`` of a secret's variable)."""
    found = []
    for source in sources:
        if source.command is not None:
            continue
        try:
            found.append(_read_one(source, Masker()))
        except SecretError:
            continue
    return found


def _read_one(source: SecretSource, masker: Masker) -> str:
    if source.command is not None:
        return _run_command(source, masker)
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


def _run_command(source: SecretSource, masker: Masker) -> str:
    """The command's stdout, one trailing newline stripped. Its stderr is shown
    (masked with the secrets read so far) when it fails; stdin and the terminal stay
    the operator's, so a secret manager can ask for a PIN."""
    assert source.command is not None
    where = masker.mask(f"secret {source.name!r}: command {shlex.join(source.command)}")
    try:
        done = subprocess.run(
            list(source.command),
            capture_output=True,
            cwd=source.cwd,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise SecretError(f"{where}: program not found") from None
    except subprocess.TimeoutExpired:
        raise SecretError(f"{where}: no answer within {COMMAND_TIMEOUT:g}s") from None
    except OSError as exc:
        raise SecretError(f"{where}: cannot start: {exc.strerror or exc}") from None
    stdout = done.stdout.decode("utf-8", errors="replace")
    value = stdout[:-1] if stdout.endswith("\n") else stdout
    if value.endswith("\r"):
        value = value[:-1]
    if done.returncode != 0 or not value:
        why = f"exit code {done.returncode}" if done.returncode else "printed nothing"
        said = done.stderr.decode("utf-8", errors="replace").strip()
        # the failed command may have printed the value it was meant to return
        said = Masker([*masker.values, value]).mask(said)[-_STDERR_SHOWN:]
        raise SecretError(f"{where}: {why}" + (f": {said}" if said else ""))
    return value


def _forms(value: str) -> set[str]:
    return {
        value,
        shlex.quote(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote(value),  # safe "/": Jinja's `urlencode`, most URL builders
        urllib.parse.quote_plus(value),
        urllib.parse.quote_plus(value, safe="/"),
        repr(value)[1:-1],  # tracebacks and exception messages show reprs
        # what a template's own filters make of it (| upper, | lower, | title...)
        value.upper(),
        value.lower(),
        value.title(),
        value.capitalize(),
        value.swapcase(),
        value[::-1],  # | reverse
        _html_escaped(value),  # | e (a report or a template may escape it)
    }


def _html_escaped(value: str) -> str:
    """What Jinja's ``escape`` (markupsafe) makes of a text."""
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        value = value.replace(char, entity)
    return value.replace("'", "&#39;").replace('"', "&#34;")


class Masker:
    """Replaces every known form of every secret with ``***``."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.values = [v for v in values if len(v) >= MIN_SAFE_LENGTH]
        forms: set[str] = set()
        for value in self.values:
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
