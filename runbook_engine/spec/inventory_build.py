"""Build an :class:`~runbook_engine.spec.inventory.Inventory` from a loaded document,
checking every value that will reach an SSH connection or a remote script.

Owns: the precedence of settings (the host's own values, then ``defaults``, then
``~/.ssh/config``, then built-in defaults), the ssh_config merge (read with
paramiko's parser, the only use of paramiko outside ``transports/``), ProxyJump
chains followed recursively with loops refused, group cycles, and the rules that
keep inventory values from becoming options or shell (``spec/hostvalues.py``):

- ``address``: a host name (RFC 1123 labels) or an IP address;
- ``user``: a POSIX user name;
- ``port``: 1-65535;
- ``identity_file``, ``known_hosts``, ``ssh_config``, ``lock_dir``: a path that does
  not start with ``-`` and holds no whitespace, quotes, ``;``, ``$(``, backticks or
  control characters;
- ``proxy_jump``: comma-separated inventory host names or ``[user@]host[:port]``,
  each part following the rules above;
- host and group names: the schema's pattern (letters, digits, ``_ . -``).

The same rules apply to the values ssh_config gives (HostName, User, Port,
IdentityFile, ProxyJump). Every problem of every host and group is reported, each at
its own ``path:line:col``; the builder runs on what is sound even when the schema
refused other parts of the file.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from ..diagnostics import Diagnostic, Position
from ..units import parse_duration
from .hostvalues import ALLOWED, USER, is_valid_address, local_user, unsafe_part
from .sshconfig import Jumps, SSHConfig

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .inventory import Host, Inventory
    from .loader import Document

NodePath = tuple[str | int, ...]

_PATH_FIELDS: Final = ("identity_file", "known_hosts", "lock_dir")


def _text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) else None


class InventoryBuilder:
    """One inventory document to hosts and groups, collecting every diagnostic."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        data = doc.data if isinstance(doc.data, dict) else {}
        self.data: Mapping[str, Any] = data
        defaults = data.get("defaults")
        self.defaults: Mapping[str, Any] = (
            defaults if isinstance(defaults, dict) else {}
        )
        self.base = Path(doc.path).parent
        self.diagnostics: list[Diagnostic] = []
        self._check_defaults()
        self.ssh_config = SSHConfig.load(self._ssh_config_path(), self)

    def build(self) -> Inventory:
        from .inventory import Inventory

        raw_hosts = self.data.get("hosts")
        hosts: dict[str, Host] = {}
        for name, raw in raw_hosts.items() if isinstance(raw_hosts, dict) else ():
            if isinstance(name, str):
                hosts[name] = self._host(name, raw if isinstance(raw, dict) else {})
        hosts = Jumps(self, hosts).resolve_all()
        inventory_vars = self.data.get("vars")
        return Inventory(
            hosts=hosts,
            groups=self._groups(hosts),
            vars=MappingProxyType(
                dict(inventory_vars) if isinstance(inventory_vars, dict) else {}
            ),
            path=self.doc.path,
        )

    # -- diagnostics -------------------------------------------------------------

    def error(self, path: NodePath, message: str, key: bool = False) -> None:
        self.diagnostics.append(Diagnostic.at(self.position(path, key), message))

    def position(self, path: NodePath, key: bool = False) -> Position:
        positions = self.doc.positions  # falls back to the nearest ancestor
        return positions.key(path) if key else positions.value(path)

    def check_value(
        self, kind: str, field: str, value: str, where: NodePath, who: str
    ) -> bool:
        """Report ``value`` (of ``field``, checked as ``kind``) unless it is safe."""
        problem = unsafe_part(value)
        if problem is None and kind == "address" and not is_valid_address(value):
            problem = "something that is not a host name or an IP address"
        if problem is None and kind == "user" and not USER.match(value):
            problem = "something that is not a POSIX user name"
        if problem is None:
            return True
        allowed = ALLOWED[kind]
        key = where[-1] != field
        self.error(where, f"{who}{field} {value!r} has {problem}; use {allowed}", key)
        return False

    # -- settings ------------------------------------------------------------------

    def _check_defaults(self) -> None:
        where: NodePath = ("defaults",)
        for field in (*_PATH_FIELDS, "ssh_config"):
            value = _text(self.defaults, field)
            if value is not None:
                self.check_value("path", field, value, (*where, field), "defaults: ")
        user = _text(self.defaults, "user")
        if user is not None:
            self.check_value("user", "user", user, (*where, "user"), "defaults: ")
        jump = _text(self.defaults, "proxy_jump")
        if jump is not None and unsafe_part(jump.replace(",", "")):
            self.check_value(
                "proxy_jump", "proxy_jump", jump, (*where, "proxy_jump"), "defaults: "
            )

    def _ssh_config_path(self) -> tuple[Path | None, bool]:
        from .inventory import DEFAULT_SSH_CONFIG

        explicit = _text(self.defaults, "ssh_config")
        if explicit is not None:
            return (None if unsafe_part(explicit) else self.path(explicit)), True
        return Path(DEFAULT_SSH_CONFIG).expanduser(), False

    def path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base / path

    def setting(self, raw: Mapping[str, Any], key: str) -> tuple[Any, NodePath | None]:
        """(the host's value or the default, where it was written; None from
        defaults, already checked)."""
        if key in raw:
            return raw[key], None
        return self.defaults.get(key), ("defaults", key)

    def _host(self, name: str, raw: Mapping[str, Any]) -> Host:
        from .inventory import LOCAL, local_host

        where: NodePath = ("hosts", name)
        top_vars = self.data.get("vars")
        own_vars = raw.get("vars")
        host_vars = MappingProxyType(
            {
                **(top_vars if isinstance(top_vars, dict) else {}),
                **(own_vars if isinstance(own_vars, dict) else {}),
            }
        )
        connection, _ = self.setting(raw, "connection")
        if connection == "local" or name == LOCAL:
            if name == LOCAL and connection == "ssh":
                self.error(
                    where,
                    "the host name 'local' is reserved for the control machine",
                    key=True,
                )
            return local_host(name, host_vars)
        return _HostSettings(self, name, raw).host(host_vars)

    def _groups(self, hosts: Mapping[str, Host]) -> dict[str, list[str]]:
        from .inventory import LOCAL

        raw_groups = self.data.get("groups")
        groups = {
            name: [m for m in members if isinstance(m, str)]
            for name, members in (
                raw_groups.items() if isinstance(raw_groups, dict) else ()
            )
            if isinstance(name, str) and isinstance(members, list)
        }
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
        self._group_cycles(groups, hosts)
        return groups

    def _group_cycles(
        self, groups: Mapping[str, list[str]], hosts: Mapping[str, Host]
    ) -> None:
        """A group that contains itself, through any number of groups: refused at
        the member that closes the loop, once per loop."""
        done: set[str] = set()
        reported: set[frozenset[str]] = set()

        def visit(name: str, chain: tuple[str, ...]) -> None:
            for index, member in enumerate(groups[name]):
                if member in hosts or member not in groups:
                    continue
                if member in chain:
                    loop = (*chain[chain.index(member) :], member)
                    if frozenset(loop) not in reported:
                        reported.add(frozenset(loop))
                        self.error(
                            ("groups", name, index),
                            f"group {name!r}: groups contain each other in a loop"
                            f" ({' -> '.join(loop)}); a group cannot contain itself",
                        )
                elif member not in done:
                    visit(member, (*chain, member))
            done.add(name)

        for name in groups:
            if name not in done:
                visit(name, (name,))


class _HostSettings:
    """The connection settings of one SSH host, each checked where it was written."""

    def __init__(self, builder: InventoryBuilder, name: str, raw: Mapping[str, Any]):
        self.builder = builder
        self.name = name
        self.raw = raw
        self.where: NodePath = ("hosts", name)
        self.who = f"host {name!r}: "

    def _own(self, field: str) -> NodePath:
        return (*self.where, field) if field in self.raw else self.where

    def _config_problem(self, kind: str, field: str, value: str) -> bool:
        return self.builder.check_value(
            kind, f"ssh_config {field}", value, self.where, self.who
        )

    def host(self, host_vars: Mapping[str, Any]) -> Host:
        from .inventory import DEFAULT_KNOWN_HOSTS, DEFAULT_LOCK_DIR, Host

        builder = self.builder
        alias = _text(self.raw, "address") or self.name  # the ssh destination
        config = builder.ssh_config.lookup(alias)
        address = self._address(alias, config)
        return Host(
            name=self.name,
            address=address,
            port=self._port(config),
            user=self._user(config),
            identity_file=self._identity_file(config),
            known_hosts=str(
                builder.path(self._path("known_hosts", DEFAULT_KNOWN_HOSTS))
            ),
            connect_timeout=self._duration("connect_timeout", 10.0),
            keepalive=self._duration("keepalive", 5.0),
            host_key=_text(self.raw, "host_key"),
            proxy_jump=self._proxy_jump(config),
            vars=host_vars,
            lock_dir=self._path("lock_dir", DEFAULT_LOCK_DIR),
        )

    def _address(self, alias: str, config: Mapping[str, str]) -> str:
        if "address" in self.raw:
            self.builder.check_value(
                "address", "address", alias, self._own("address"), self.who
            )
        hostname = config.get("hostname")
        if hostname is not None and hostname != alias:
            self._config_problem("address", "HostName", hostname)
            return hostname
        if "address" not in self.raw:
            self.builder.check_value("address", "address", alias, self.where, self.who)
        return alias

    def _user(self, config: Mapping[str, str]) -> str:
        value, from_defaults = self.builder.setting(self.raw, "user")
        if isinstance(value, str):
            if from_defaults is None:
                self.builder.check_value(
                    "user", "user", value, self._own("user"), self.who
                )
            return value
        configured = config.get("user")
        if configured is not None:
            self._config_problem("user", "User", configured)
            return configured
        return local_user()

    def _port(self, config: Mapping[str, str]) -> int:
        value, _ = self.builder.setting(self.raw, "port")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        text = config.get("port")
        if text is None:
            return 22
        if not text.isdigit() or not 1 <= int(text) <= 65535:
            self.builder.error(
                self.where,
                f"{self.who}ssh_config gives port {text!r}; a port is 1-65535",
                key=True,
            )
            return 22
        return int(text)

    def _path(self, field: str, default: str) -> str:
        value, from_defaults = self.builder.setting(self.raw, field)
        if not isinstance(value, str):
            return default
        if from_defaults is None:
            self.builder.check_value("path", field, value, self._own(field), self.who)
        return value

    def _identity_file(self, config: Mapping[str, str]) -> str | None:
        value, from_defaults = self.builder.setting(self.raw, "identity_file")
        if isinstance(value, str):
            if from_defaults is None:
                self.builder.check_value(
                    "path", "identity_file", value, self._own("identity_file"), self.who
                )
            return str(self.builder.path(value))
        configured = config.get("identityfile")
        if configured is not None:
            self._config_problem("path", "IdentityFile", configured)
        return configured

    def _proxy_jump(self, config: Mapping[str, str]) -> str | None:
        """The proxy_jump to follow; None when it is unsafe (reported here)."""
        value, from_defaults = self.builder.setting(self.raw, "proxy_jump")
        if isinstance(value, str):
            if unsafe_part(value.replace(",", "")) is None:
                return value
            if from_defaults is None:
                self.builder.check_value(
                    "proxy_jump", "proxy_jump", value, self._own("proxy_jump"), self.who
                )
            return None
        configured = config.get("proxyjump")
        if configured is not None and unsafe_part(configured.replace(",", "")):
            self._config_problem("proxy_jump", "ProxyJump", configured)
            return None
        return configured

    def _duration(self, field: str, default: float) -> float:
        value, _ = self.builder.setting(self.raw, field)
        try:
            return default if value is None else parse_duration(value)
        except (TypeError, ValueError):
            return default  # the schema reports it
