"""Inventories: hosts, groups, host patterns and the ssh_config merge.

Owns reading ``-i inventory.yaml`` (through the shared YAML loader and schema, so
errors read ``path:line:col: message``), checking every value that will reach an SSH
connection (addresses, users, ports: nothing can become an ssh option or a shell
fragment), merging ``~/.ssh/config`` and resolving patterns such as ``web*`` to an
ordered list of hosts. It opens no connection; ``transports/`` does that.

Precedence of connection settings: the host's own inventory values, then the
inventory's ``defaults``, then ``ssh_config`` (HostName, User, Port, IdentityFile,
ProxyJump), then built-in defaults. The name ``local`` always means the control
machine.
"""

from __future__ import annotations

import difflib
import fnmatch
import getpass
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from ..diagnostics import Diagnostic, Position
from ..errors import InputError, InventoryError
from ..units import parse_duration

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .loader import Document

LOCAL = "local"
ALL = "all"
Connection = Literal["local", "ssh"]

DEFAULT_PORT = 22
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_KEEPALIVE = 5.0
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
DEFAULT_SSH_CONFIG = "~/.ssh/config"
DEFAULT_LOCK_DIR = "~/.local/state/runbook/locks"

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$")
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$")
_JUMP = re.compile(
    r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]]+\]|[^:@\s]+)(?::(?P<port>\d+))?$"
)
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
        user=_local_user(),
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


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "root"


# -- loading ------------------------------------------------------------------------


def load_inventory(path: str | Path) -> Inventory:
    """Read, validate and resolve an inventory file. Raises ``InventoryError`` with
    every diagnostic found."""
    from .loader import load_yaml  # yaml and jsonschema only when a file is read
    from .schema import validate_document

    try:
        doc = load_yaml(Path(path))
    except InputError as exc:
        raise InventoryError(f"{path}: invalid inventory", exc.diagnostics) from exc
    problems = validate_document(doc, "inventory")
    if not problems:
        builder = _Builder(doc)
        inventory = builder.build()
        problems = builder.diagnostics
    if any(d.severity == "error" for d in problems):
        raise InventoryError(f"{path}: invalid inventory", problems)
    return inventory


def check_inventory(path: str | Path) -> list[Diagnostic]:
    """Every diagnostic for an inventory file ([] when valid), for ``validate``."""
    try:
        load_inventory(path)
    except InventoryError as exc:
        return exc.diagnostics or [Diagnostic(str(path), 1, 1, str(exc))]
    return []


class _Builder:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.data: Mapping[str, Any] = doc.data or {}
        self.defaults: Mapping[str, Any] = self.data.get("defaults") or {}
        self.base = Path(doc.path).parent
        self.diagnostics: list[Diagnostic] = []
        self.ssh_config = _SSHConfig.load(self._ssh_config_path(), self)

    def build(self) -> Inventory:
        raw_hosts: Mapping[str, Any] = self.data.get("hosts") or {}
        hosts = {name: self._host(name, raw or {}) for name, raw in raw_hosts.items()}
        hosts = {name: self._with_jump(host, hosts) for name, host in hosts.items()}
        groups = self._groups(hosts)
        return Inventory(
            hosts=hosts,
            groups=groups,
            vars=MappingProxyType(dict(self.data.get("vars") or {})),
            path=self.doc.path,
        )

    def error(
        self, path: tuple[str | int, ...], message: str, key: bool = False
    ) -> None:
        self.diagnostics.append(Diagnostic.at(self.position(path, key), message))

    def position(self, path: tuple[str | int, ...], key: bool = False) -> Position:
        positions = self.doc.positions  # falls back to the nearest ancestor
        return positions.key(path) if key else positions.value(path)

    def _ssh_config_path(self) -> tuple[Path | None, bool]:
        explicit = self.defaults.get("ssh_config")
        if explicit is not None:
            return self._path(str(explicit)), True
        return Path(DEFAULT_SSH_CONFIG).expanduser(), False

    def _path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base / path

    def _setting(self, raw: Mapping[str, Any], key: str) -> Any:
        return raw[key] if key in raw else self.defaults.get(key)

    def _host(self, name: str, raw: Mapping[str, Any]) -> Host:
        where = ("hosts", name)
        host_vars = MappingProxyType(
            {**(self.data.get("vars") or {}), **raw.get("vars", {})}
        )
        if self._setting(raw, "connection") == "local" or name == LOCAL:
            if name == LOCAL and self._setting(raw, "connection") == "ssh":
                self.error(
                    where,
                    "the host name 'local' is reserved for the control machine",
                    key=True,
                )
            return local_host(name, host_vars)
        alias = str(raw.get("address") or name)  # the ssh destination, as typed
        config = self.ssh_config.lookup(alias)
        address = config.get("hostname") or alias
        self._check_address(address, (*where, "address") if "address" in raw else where)
        user = self._setting(raw, "user") or config.get("user") or _local_user()
        self._check_user(str(user), (*where, "user") if "user" in raw else where)
        identity = self._setting(raw, "identity_file")
        return Host(
            name=name,
            address=address,
            port=self._port(raw, config, where),
            user=str(user),
            identity_file=str(self._path(identity))
            if identity
            else config.get("identityfile"),
            known_hosts=str(
                self._path(self._setting(raw, "known_hosts") or DEFAULT_KNOWN_HOSTS)
            ),
            connect_timeout=self._duration(
                raw, "connect_timeout", DEFAULT_CONNECT_TIMEOUT
            ),
            keepalive=self._duration(raw, "keepalive", DEFAULT_KEEPALIVE),
            host_key=raw.get("host_key"),
            proxy_jump=self._setting(raw, "proxy_jump") or config.get("proxyjump"),
            vars=host_vars,
            lock_dir=str(self._setting(raw, "lock_dir") or DEFAULT_LOCK_DIR),
        )

    def _port(
        self, raw: Mapping[str, Any], config: Mapping[str, str], where: tuple[str, ...]
    ) -> int:
        value = self._setting(raw, "port")
        if value is not None:
            return int(value)
        text = config.get("port")
        if text is None:
            return DEFAULT_PORT
        if not text.isdigit() or not 1 <= int(text) <= 65535:
            self.error(
                where, f"ssh_config gives port {text!r}; a port is 1-65535", key=True
            )
            return DEFAULT_PORT
        return int(text)

    def _duration(self, raw: Mapping[str, Any], key: str, default: float) -> float:
        value = self._setting(raw, key)
        return default if value is None else parse_duration(value)

    def _check_address(self, address: str, where: tuple[str, ...]) -> None:
        if not is_valid_address(address):
            self.error(
                where,
                f"address {address!r} is not a host name or an IP address",
                key=where[-1] != "address",
            )

    def _check_user(self, user: str, where: tuple[str, ...]) -> None:
        if not _USER.match(user):
            self.error(
                where,
                f"user {user!r} is not a valid POSIX user name",
                key=where[-1] != "user",
            )

    def _with_jump(self, host: Host, hosts: Mapping[str, Host]) -> Host:
        if host.is_local or not host.proxy_jump or host.proxy_jump.lower() == "none":
            return host
        jump: Host | None = None
        for hop in host.proxy_jump.split(","):
            hop_host = self._jump_hop(hop.strip(), host, hosts)
            if hop_host is None:
                return host
            jump = _replace_jump(hop_host, jump)
        return _replace_jump(host, jump)

    def _jump_hop(
        self, hop: str, target: Host, hosts: Mapping[str, Host]
    ) -> Host | None:
        where = ("hosts", target.name)
        if hop in hosts:
            if hosts[hop].is_local or hop == target.name:
                self.error(
                    where,
                    f"proxy_jump {hop!r} cannot be a local host or the host itself",
                    key=True,
                )
                return None
            return hosts[hop]
        match = _JUMP.match(hop)
        if match is None:
            self.error(where, f"proxy_jump {hop!r} is not [user@]host[:port]", key=True)
            return None
        alias = match.group("host").strip("[]")
        config = self.ssh_config.lookup(alias)
        address = config.get("hostname") or alias
        user = match.group("user") or config.get("user") or target.user
        port = int(match.group("port") or config.get("port") or DEFAULT_PORT)
        if (
            not is_valid_address(address)
            or not _USER.match(user)
            or not 1 <= port <= 65535
        ):
            self.error(
                where,
                f"proxy_jump {hop!r} has an invalid user, address or port",
                key=True,
            )
            return None
        return Host(
            name=hop,
            address=address,
            port=port,
            user=user,
            identity_file=config.get("identityfile") or target.identity_file,
            known_hosts=target.known_hosts,
            connect_timeout=target.connect_timeout,
            keepalive=target.keepalive,
        )

    def _groups(self, hosts: Mapping[str, Host]) -> dict[str, list[str]]:
        raw_groups: Mapping[str, list[str]] = self.data.get("groups") or {}
        groups = {name: list(members) for name, members in raw_groups.items()}
        known = [*hosts, *groups]
        for name, members in groups.items():
            if name in hosts:
                self.error(
                    ("groups", name), f"group {name!r} has the name of a host", key=True
                )
            for index, member in enumerate(members):
                if member not in hosts and member not in groups and member != LOCAL:
                    close = difflib.get_close_matches(member, known, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    self.error(
                        ("groups", name, index),
                        f"group {name!r}: unknown host or group {member!r}{hint}",
                    )
        return groups


def _replace_jump(host: Host, jump: Host | None) -> Host:
    fields = {name: getattr(host, name) for name in Host.__dataclass_fields__}
    fields["jump"] = jump
    return Host(**fields)


def is_valid_address(address: str) -> bool:
    """A host name (RFC 1123 labels, no leading '-') or an IPv4/IPv6 literal."""
    if len(address) > 253 or not address:
        return False
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return bool(_HOSTNAME.match(address)) and not address.startswith("-")
    return True


class _SSHConfig:
    """The OpenSSH client config, read with paramiko's parser (only HostName, User,
    Port, IdentityFile and ProxyJump are used)."""

    def __init__(self, config: Any) -> None:
        self._config = config

    @classmethod
    def load(cls, where: tuple[Path | None, bool], builder: _Builder) -> _SSHConfig:
        path, explicit = where
        if path is None or not path.exists():
            if explicit:
                builder.error(
                    ("defaults", "ssh_config"), f"ssh_config file {path} does not exist"
                )
            return cls(None)
        from paramiko import SSHConfig  # paramiko only for its ssh_config parser

        try:
            return cls(SSHConfig.from_path(str(path)))
        except Exception as exc:  # paramiko raises several kinds for a bad file
            builder.error(
                ("defaults", "ssh_config") if explicit else (),
                f"cannot read ssh_config {path}: {exc}",
            )
            return cls(None)

    def lookup(self, alias: str) -> dict[str, str]:
        if self._config is None:
            return {}
        try:
            found = self._config.lookup(alias)
        except Exception:  # e.g. "Match exec" without invoke installed: ignore it
            return {}
        result = {
            k: str(found[k])
            for k in ("hostname", "user", "port", "proxyjump")
            if k in found
        }
        identity = found.get("identityfile")
        if identity:
            result["identityfile"] = str(Path(identity[0]).expanduser())
        return result
