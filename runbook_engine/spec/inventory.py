"""Inventories: hosts, groups, host patterns and the ssh_config merge.

Owns what a host and an inventory are (:class:`Host`, :class:`Inventory`), reading
``-i inventory.yaml`` (through the shared YAML loader and schema, so errors read
``path:line:col: message``) and resolving patterns such as ``web*`` to an ordered
list of hosts. Building hosts from the file, the ssh_config merge, ProxyJump chains
and the rules that keep inventory values from becoming ssh options or shell are
``spec/inventory_build.py``. It opens no connection; ``transports/`` does that.

The name ``local`` always means the control machine.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from ..diagnostics import Diagnostic
from ..errors import InputError, InventoryError
from .hostvalues import is_valid_address, local_user

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "ALL",
    "LOCAL",
    "Host",
    "Inventory",
    "check_inventory",
    "is_valid_address",
    "load_inventory",
    "local_host",
]

LOCAL = "local"
ALL = "all"
Connection = Literal["local", "ssh"]

DEFAULT_PORT = 22
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_KEEPALIVE = 5.0
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
DEFAULT_SSH_CONFIG = "~/.ssh/config"
DEFAULT_LOCK_DIR = "~/.local/state/runbook/locks"

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, slots=True, kw_only=True)
class Host:
    """Everything needed to reach one host. ``jump`` is ``proxy_jump`` resolved to
    the host to go through (itself possibly behind another jump)."""

    name: str
    connection: Connection = "ssh"
    address: str
    port: int = DEFAULT_PORT
    user: str
    identity_file: str | None = None
    known_hosts: str = DEFAULT_KNOWN_HOSTS
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    keepalive: float = DEFAULT_KEEPALIVE
    host_key: str | None = None
    proxy_jump: str | None = None
    jump: Host | None = None
    vars: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    lock_dir: str = DEFAULT_LOCK_DIR

    @property
    def is_local(self) -> bool:
        return self.connection == "local"


def local_host(name: str = LOCAL, host_vars: Mapping[str, Any] | None = None) -> Host:
    return Host(
        name=name,
        connection="local",
        address="localhost",
        user=local_user(),
        vars=MappingProxyType(dict(host_vars or {})),
    )


@dataclass(frozen=True, slots=True)
class Inventory:
    """Hosts in file order, groups (host or group names), inventory-wide vars."""

    hosts: dict[str, Host]
    groups: dict[str, list[str]]
    vars: Mapping[str, Any] = field(default_factory=dict)
    path: str | None = None

    @classmethod
    def local(cls) -> Inventory:
        """The implicit inventory when no ``-i`` is given: the control machine."""
        return cls(hosts={LOCAL: local_host()}, groups={})

    def resolve(self, pattern: str | list[str], limit: str | None = None) -> list[Host]:
        """Hosts matching ``pattern`` (names, groups, globs, a list or a comma list),
        in order and de-duplicated, narrowed by ``limit``. A pattern element that
        matches nothing raises ``InventoryError`` naming it."""
        names = self._expand_all(_split(pattern))
        if limit is not None:
            allowed = set(self._expand_all(_split(limit)))
            names = [name for name in names if name in allowed]
            if not names:
                raise InventoryError(f"--limit {limit!r} leaves none of {pattern!r}")
        return [self._host(name) for name in names]

    def _host(self, name: str) -> Host:
        return self.hosts.get(name) or local_host()

    def _expand_all(self, elements: list[str]) -> list[str]:
        names: dict[str, None] = {}
        for element in elements:
            found = self._expand(element, set())
            if not found and element in self.groups:
                raise InventoryError(f"group {element!r} contains no hosts")
            if not found:
                raise InventoryError(self._no_match(element))
            names.update(dict.fromkeys(found))
        return list(names)

    def _expand(self, element: str, seen: set[str]) -> list[str]:
        if element in self.hosts or element == LOCAL:
            return [element]
        if element in self.groups:
            if element in seen:  # a cycle of groups: each name is expanded once
                return []
            seen.add(element)
            return [
                n for member in self.groups[element] for n in self._expand(member, seen)
            ]
        if element == ALL:
            return list(self.hosts)
        if _GLOB_CHARS & set(element):
            hosts = [n for n in self.hosts if fnmatch.fnmatchcase(n, element)]
            groups = [g for g in self.groups if fnmatch.fnmatchcase(g, element)]
            return hosts + [n for g in groups for n in self._expand(g, seen)]
        return []

    def _no_match(self, element: str) -> str:
        known = [*self.hosts, *self.groups]
        close = difflib.get_close_matches(element, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        where = f" in {self.path}" if self.path else " (no inventory given: use -i)"
        return f"no host or group matches {element!r}{where}{hint}"


def _split(pattern: str | list[str]) -> list[str]:
    items = [pattern] if isinstance(pattern, str) else list(pattern)
    parts = [part.strip() for item in items for part in item.split(",")]
    return [part for part in parts if part]


# -- loading ------------------------------------------------------------------------

_SHAPE = "an inventory is a mapping with version and hosts"


def load_inventory(path: str | Path) -> Inventory:
    """Read, validate and resolve an inventory file. Raises ``InventoryError`` with
    every diagnostic found, of every host and group, in one pass."""
    inventory, problems = _read(path)
    if inventory is None or any(d.severity == "error" for d in problems):
        raise InventoryError(f"{path}: invalid inventory", problems)
    return inventory


def check_inventory(path: str | Path) -> list[Diagnostic]:
    """Every diagnostic for an inventory file ([] when valid), for ``validate``."""
    return _read(path)[1]


def _read(path: str | Path) -> tuple[Inventory | None, list[Diagnostic]]:
    from .inventory_build import InventoryBuilder
    from .loader import read_yaml  # yaml and jsonschema only when a file is read
    from .schema import validate_document

    try:
        doc = read_yaml(Path(path), shape=_SHAPE)
    except InputError as exc:
        return None, exc.diagnostics or [Diagnostic(str(path), 1, 1, str(exc))]
    problems = [*doc.problems, *validate_document(doc, "inventory")]
    builder = InventoryBuilder(doc)
    inventory = builder.build()
    taken = {(d.line, d.col) for d in problems}
    problems += [d for d in builder.diagnostics if (d.line, d.col) not in taken]
    problems = list(dict.fromkeys(problems))
    return inventory, sorted(problems, key=lambda d: (d.line, d.col))
