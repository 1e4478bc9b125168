"""Defaults for the command line from a config file, so a team writes its inventory,
forks, state dir and reports once.

Files, the first one found of each kind, the repository's winning over the user's:

1. ``runbook.toml`` in the working directory or the nearest parent directory that
   has one, stopping at the repository root (the directory holding ``.git``);
2. ``${XDG_CONFIG_HOME:-~/.config}/runbook/config.toml``.

A flag on the command line wins over an environment variable (``RUNBOOK_STATE_DIR``,
``RUNBOOK_STATE_URL``, ``RUNBOOK_INVENTORY``...), which wins over the files (click's
``default_map``). ``state`` is the shared database's URL (keep its password in
``~/.pgpass``, not in a file in the repository). Paths
in a file are relative to that file's directory. An unknown key, a wrong type or
broken TOML is an input error (exit 2) naming the file, and the line when TOML says.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from ..errors import InputError

REPO_FILE = "runbook.toml"

# key -> (type, the commands it is a default for, the option's name in them)
_RUNS = ("run", "check", "drill", "resume", "rollback")
# every command that reads or writes state
_STATEFUL = (
    *_RUNS,
    "plan",
    "unlock",
    "approve",
    "audit list",
    "audit show",
    "audit verify",
    "audit export",
    "state import",
)
_KEYS: dict[str, tuple[type, tuple[str, ...], str]] = {
    "inventory": (
        str,
        ("run", "check", "drill", "plan", "validate", "unlock"),
        "inventory",
    ),
    "forks": (int, ("run", "check", "drill"), "forks"),
    "state_dir": (
        str,
        _STATEFUL,
        "state_dir",
    ),
    "state": (
        str,
        _STATEFUL,
        "state_url",
    ),
    "reports": (list, _RUNS, "reports"),
    "audit_forward": (str, (*_RUNS, "plan", "unlock"), "audit_forward"),
    "color": (str, _RUNS, "colour"),
}
_PATHS = frozenset({"inventory", "state_dir"})


def find_files(
    start: Path | None = None, environ: dict[str, str] | None = None
) -> list[Path]:
    """The config files that apply, the user's first (the repository's wins)."""
    env = os.environ if environ is None else environ
    found: list[Path] = []
    home = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    user = Path(home) / "runbook" / "config.toml"
    if user.is_file():
        found.append(user)
    directory = (start or Path.cwd()).resolve()
    for candidate in (directory, *directory.parents):
        if (candidate / REPO_FILE).is_file():
            found.append(candidate / REPO_FILE)
            break
        if (candidate / ".git").exists():
            break
    return found


def default_map(files: list[Path]) -> dict[str, Any]:
    """click's ``default_map`` from the files: ``{"run": {"forks": 5}, "audit":
    {"list": {...}}}``."""
    merged: dict[str, tuple[Any, Path]] = {}
    for path in files:
        for key, value in _read(path).items():
            merged[key] = (value, path)
    defaults: dict[str, Any] = {}
    for key, (value, path) in merged.items():
        _, commands, option = _KEYS[key]
        if key in _PATHS:
            value = str((path.parent / Path(value).expanduser()).resolve())
        if key == "reports":
            value = [_report_path(item, path) for item in value]
        for command in commands:
            where = defaults
            for part in command.split():
                where = where.setdefault(part, {})
            where[option] = value
    return defaults


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}:1:1: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(_position(path, str(exc), text)) from None
    problems = [
        f"{path}:{_line_of(text, key)}:1: {problem}"
        for key, value in data.items()
        if (problem := _problem(key, value))
    ]
    if problems:
        raise InputError("\n".join(problems))
    return data


def _line_of(text: str, key: str) -> int:
    """The line a top-level key is set on (1 when it cannot be found)."""
    match = re.search(rf"(?m)^[ \t]*[\"']?{re.escape(key)}[\"']?[ \t]*=", text)
    return text.count("\n", 0, match.start()) + 1 if match else 1


_NOUNS = {str: "a string", int: "a whole number", list: "a list", bool: "true/false"}


def _problem(key: str, value: Any) -> str | None:
    if key not in _KEYS:
        close = difflib.get_close_matches(key, list(_KEYS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {key!r}{hint}; known: {', '.join(sorted(_KEYS))}"
    kind = _KEYS[key][0]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        got = _NOUNS.get(type(value), type(value).__name__)
        return f"{key!r} must be {_NOUNS[kind]}, not {got}"
    if isinstance(value, list) and not all(isinstance(v, str) for v in value):
        return "'reports' must be a list of FORMAT:PATH strings"
    if key == "color" and value not in ("auto", "always", "never"):
        return f"'color' must be auto, always or never, not {value!r}"
    if key == "forks" and isinstance(value, int) and not 1 <= value <= 1000:
        return f"'forks' must be between 1 and 1000, not {value}"
    return None


def _report_path(value: str, config: Path) -> str:
    kind, sep, target = value.partition(":")
    if not sep:
        return value  # the command says what is wrong with it
    return f"{kind}:{(config.parent / Path(target).expanduser()).resolve()}"


def _position(path: Path, message: str, text: str) -> str:
    """``path:line:col: problem`` from tomllib's "problem (at line L, column C)"."""
    match = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if match is not None:
        problem = message[: match.start()].strip()
        return f"{path}:{match.group(1)}:{match.group(2)}: {problem}"
    if "(at end of document)" in message:
        lines = text.splitlines() or [""]
        problem = message.replace("(at end of document)", "").strip()
        return f"{path}:{len(lines)}:{len(lines[-1]) + 1}: {problem} at the end"
    return f"{path}:1:1: {message}"
