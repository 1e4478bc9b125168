"""How a host is reached: the OpenSSH client config (read with paramiko's parser,
the only use of paramiko outside ``transports/``) and ProxyJump chains, followed
recursively with loops refused. Used by ``spec/inventory_build.py``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .hostvalues import ALLOWED, JUMP, USER, is_valid_address, unsafe_part

if TYPE_CHECKING:
    from .inventory import Host
    from .inventory_build import InventoryBuilder, NodePath

__all__ = ["Jumps", "SSHConfig", "replace_jump"]


class Jumps:
    """``proxy_jump`` resolved to the host to go through, recursively: a jump
    host's own proxy_jump (or its ssh_config ProxyJump) is followed too, and a loop
    is refused naming the chain. Of several comma-separated hops, the first keeps
    its own chain and each later one is reached through the one before, as
    OpenSSH does."""

    def __init__(self, builder: InventoryBuilder, hosts: dict[str, Host]) -> None:
        self.builder = builder
        self.hosts = hosts
        self.resolved: dict[str, Host] = {}

    def resolve_all(self) -> dict[str, Host]:
        return {name: self.resolve(name, ()) for name in self.hosts}

    def resolve(self, name: str, chain: tuple[str, ...]) -> Host:
        known = self.resolved.get(name)
        if known is not None:
            return known
        host = self.hosts[name]
        jump = self.chain(host, host.proxy_jump, (*chain, name))
        result = replace_jump(host, jump)
        self.resolved[name] = result
        return result

    def chain(
        self, target: Host, spec: str | None, chain: tuple[str, ...]
    ) -> Host | None:
        if target.is_local or not spec or spec.strip().lower() == "none":
            return None
        jump: Host | None = None
        for index, hop in enumerate(part.strip() for part in spec.split(",")):
            if hop in chain:
                self._loop(target, chain, (*chain, hop))
                return None
            hop_host = self.hop(hop, target, chain)
            if hop_host is None:
                return None
            jump = hop_host if index == 0 else replace_jump(hop_host, jump)
        return jump

    def hop(self, hop: str, target: Host, chain: tuple[str, ...]) -> Host | None:
        where, who = self._where(target, chain)
        if hop in self.hosts:
            if self.hosts[hop].is_local:
                self.builder.error(
                    where, f"{who}proxy_jump {hop!r} cannot be a local host", key=True
                )
                return None
            return self.resolve(hop, chain)
        match = JUMP.match(hop)
        if match is None:
            message = f"{who}proxy_jump {hop!r} is not [user@]host[:port]"
            self.builder.error(where, message, key=True)
            return None
        return self._outside_hop(hop, match, target, chain)

    def _outside_hop(
        self, hop: str, match: re.Match[str], target: Host, chain: tuple[str, ...]
    ) -> Host | None:
        from .inventory import DEFAULT_PORT, Host

        where, who = self._where(target, chain)
        alias = match.group("host").strip("[]")
        config = self.builder.ssh_config.lookup(alias)
        address = config.get("hostname") or alias
        user = match.group("user") or config.get("user") or target.user
        port = int(match.group("port") or config.get("port") or DEFAULT_PORT)
        if (
            not is_valid_address(address)
            or not USER.match(user)
            or not 1 <= port <= 65535
        ):
            self.builder.error(
                where,
                f"{who}proxy_jump {hop!r} has an invalid user, address or port;"
                f" use {ALLOWED['proxy_jump']}",
                key=True,
            )
            return None
        outside = Host(
            name=hop,
            address=address,
            port=port,
            user=user,
            identity_file=config.get("identityfile") or target.identity_file,
            known_hosts=target.known_hosts,
            connect_timeout=target.connect_timeout,
            keepalive=target.keepalive,
        )
        onward = config.get("proxyjump")
        if onward is not None and unsafe_part(onward.replace(",", "")):
            self.builder.check_value(
                "proxy_jump", f"ssh_config ProxyJump of {hop!r}", onward, where, who
            )
            return None
        return replace_jump(outside, self.chain(outside, onward, (*chain, hop)))

    def _where(self, target: Host, chain: tuple[str, ...]) -> tuple[NodePath, str]:
        """Where to report a problem of ``target``'s jump: its proxy_jump, or for a
        hop from outside the inventory, that of the inventory host it serves."""
        name = target.name if target.name in self.hosts else chain[0]
        raw = self.builder.data.get("hosts", {}).get(name)
        field = isinstance(raw, dict) and "proxy_jump" in raw
        where: NodePath = ("hosts", name, "proxy_jump") if field else ("hosts", name)
        return where, f"host {name!r}: "

    def _loop(
        self, target: Host, chain: tuple[str, ...], loop: tuple[str, ...]
    ) -> None:
        where, who = self._where(target, chain)
        self.builder.error(
            where,
            f"{who}proxy_jump goes round in a loop ({' -> '.join(loop)});"
            " a jump host cannot be reached through itself",
            key=where[-1] != "proxy_jump",
        )


def replace_jump(host: Host, jump: Host | None) -> Host:
    """``host`` reached through ``jump``."""
    from .inventory import Host

    fields = {name: getattr(host, name) for name in Host.__dataclass_fields__}
    fields["jump"] = jump
    return Host(**fields)


class SSHConfig:
    """The OpenSSH client config, read with paramiko's parser (only HostName, User,
    Port, IdentityFile and ProxyJump are used)."""

    def __init__(self, config: Any) -> None:
        self._config = config

    @classmethod
    def load(
        cls, where: tuple[Path | None, bool], builder: InventoryBuilder
    ) -> SSHConfig:
        path, explicit = where
        if path is None or not path.exists():
            if explicit and path is not None:
                builder.error(
                    ("defaults", "ssh_config"), f"ssh_config file {path} does not exist"
                )
            return cls(None)
        from paramiko import SSHConfig as ParamikoConfig  # its ssh_config parser only

        try:
            lines, neutered = _match_exec(path.read_text("utf-8", errors="replace"))
            if explicit and lines:
                builder.error(
                    ("defaults", "ssh_config"),
                    f"{path}:{lines[0]}: `Match exec` runs a command, and reading an"
                    " inventory never runs anything: remove it or match on host",
                )
                return cls(None)
            return cls(ParamikoConfig.from_text(neutered))
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


# paramiko evaluates ``Match exec "cmd"`` by running cmd (through invoke): a
# repository's ssh_config would run code in CI from `validate` or `plan`
_MATCH_EXEC = re.compile(r"^\s*match\b.*(?:^|\s|=)!?exec\b", re.IGNORECASE)
_NEVER = "Match host runbook-never-matches.invalid"


def _match_exec(text: str) -> tuple[list[int], str]:
    """The numbers of the ``Match ... exec`` lines, and the config with each such
    block matching nothing (the operator's own ~/.ssh/config: runbook reads it, and
    runs none of its commands)."""
    found, kept = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if _MATCH_EXEC.match(line):
            found.append(number)
            line = _NEVER
        kept.append(line)
    return found, "\n".join(kept)
