"""Key authentication of one SSH connection (paramiko): the inventory's identity file
alone when one is set (like OpenSSH's ``IdentitiesOnly``, so an agent full of keys
cannot trip ``MaxAuthTries``; an encrypted one may be used through the agent), else
the agent's keys. A password is never offered. Every failure is an ``AuthError``
with a one-line cause. Knows nothing of sockets, host keys or commands.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko
from paramiko.pkey import UnknownKeyType
from paramiko.ssh_exception import PartialAuthentication

from ..errors import AuthError
from .ssh_wire import NETWORK_ERRORS

if TYPE_CHECKING:
    from ..spec.inventory import Host


class KeyAuth:
    """``where`` names the host in messages; ``passphrase`` unlocks an encrypted
    identity file."""

    def __init__(self, host: Host, passphrase: str | None, where: str) -> None:
        self.host = host
        self.where = where
        self._passphrase = passphrase

    def authenticate(self, transport: paramiko.Transport) -> None:
        user = self.host.user
        agent = paramiko.Agent()
        try:
            keys = self._identity(agent) if self.host.identity_file else []
            keys = keys or _agent_keys(agent)
            if not keys:
                raise AuthError(
                    f"{self.where}: no key to offer: set identity_file in the "
                    "inventory or load a key into ssh-agent"
                )
            for key in keys:
                if self._try_key(transport, user, key):
                    return
        finally:
            agent.close()
        offered = self.host.identity_file or f"{len(keys)} agent key(s)"
        raise AuthError(
            f"{self.where}: authentication rejected for user {user!r} "
            f"(offered {offered}; passwords are never offered)"
        )

    def _try_key(
        self, transport: paramiko.Transport, user: str, key: paramiko.PKey
    ) -> bool:
        try:
            transport.auth_publickey(user, key)
        except paramiko.BadAuthenticationType as exc:
            raise AuthError(
                f"{self.where}: the server does not accept keys (it allows: "
                f"{', '.join(exc.allowed_types)}); passwords are never offered"
            ) from exc
        except PartialAuthentication as exc:
            raise AuthError(
                f"{self.where}: the key was accepted but the server wants more "
                f"({', '.join(exc.allowed_types)}), which runbook never offers"
            ) from exc
        except paramiko.AuthenticationException:
            return False
        except NETWORK_ERRORS as exc:  # typically "Too many authentication failures"
            cause = (
                "the server closed the connection"
                if isinstance(exc, EOFError)
                else str(exc) or type(exc).__name__
            )
            raise AuthError(
                f"{self.where}: the server closed the connection during "
                f"authentication ({cause})"
            ) from exc
        return bool(transport.is_authenticated())

    def _identity(self, agent: paramiko.Agent) -> list[paramiko.PKey]:
        path = self.host.identity_file
        if not path:
            return []
        try:
            # positional: paramiko 5 renamed the keyword (passphrase -> password)
            return [paramiko.PKey.from_path(path, self._secret())]
        except FileNotFoundError as exc:
            raise AuthError(
                f"{self.where}: identity file {path} does not exist"
            ) from exc
        except (paramiko.PasswordRequiredException, TypeError) as exc:
            if self._passphrase is not None:  # a passphrase for a plain key
                raise AuthError(
                    f"{self.where}: cannot use identity file {path}: {exc}"
                ) from exc
            in_agent = _agent_copy(agent, path)
            if in_agent is not None:
                return [in_agent]
            raise AuthError(
                f"{self.where}: identity file {path} is encrypted and no "
                "passphrase was given"
            ) from exc
        except (paramiko.SSHException, UnknownKeyType, ValueError, OSError) as exc:
            hint = " (wrong passphrase?)" if self._passphrase else ""
            raise AuthError(
                f"{self.where}: cannot use identity file {path}{hint}: {exc}"
            ) from exc

    def _secret(self) -> bytes | None:
        return None if self._passphrase is None else self._passphrase.encode()


def _agent_keys(agent: paramiko.Agent) -> list[paramiko.PKey]:
    try:
        return list(agent.get_keys())
    except NETWORK_ERRORS:
        return []  # no usable agent: only the identity file is offered


def _agent_copy(agent: paramiko.Agent, path: str) -> paramiko.PKey | None:
    """The agent's key whose public half is ``path.pub``, if the agent holds it."""
    try:
        public = base64.b64decode(Path(f"{path}.pub").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return next((k for k in _agent_keys(agent) if k.asbytes() == public), None)
