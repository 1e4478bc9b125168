"""The connection to the state database: the one module that imports psycopg.

Owns checking a state URL (a malformed one is exit 2, its password never shown),
connecting (libpq's failures told in our words: refused, authentication, TLS and
``sslmode``, no such database, timeout), and the few primitives the database backend
is written with: queries, batches, transactions. Every driver error is translated
here, once, into ``StateStoreError`` carrying the masked location and the cause;
what the tables hold belongs to ``pgstore`` and ``pglock``.

One connection per process, in autocommit mode with explicit transactions: the
controller lock is a session advisory lock on it, so the lock and the audit writes
live and die together (a lost connection stops the run before its next step and
frees its lock at the same moment). It is never reconnected behind the run's back.
"""

from __future__ import annotations

import contextlib
import re
import threading
import urllib.parse
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import conninfo

from ..errors import InputError, StateStoreError
from .store import mask_url, url_password

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

Row = tuple[Any, ...]

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_DEFAULTS = {
    "connect_timeout": "10",
    "application_name": "runbook",
    # a server that vanishes behind a partition fails a commit within ~30 s
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
}


def check_url(url: str) -> dict[str, str]:
    """The connection parameters of ``url``; ``InputError`` (exit 2) naming what
    is wrong with a malformed one."""
    password = url_password(url)

    def masked(text: str) -> str:  # an unencoded password may be anywhere in it
        text = mask_url(text)
        return text.replace(password, "***") if password else text

    shown = masked(url)
    try:
        parsed = urllib.parse.urlsplit(url)
        parsed.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        raise InputError(
            f"state URL {shown!r}: the port is not a number (a password with / ? #"
            " @ : or a space must be percent-encoded, e.g. %2F for /)"
        ) from None
    try:
        params = conninfo.conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise InputError(f"state URL {shown!r}: {masked(str(exc).strip())}") from None
    sslmode = str(params.get("sslmode", "prefer"))
    if sslmode not in SSL_MODES:
        raise InputError(
            f"state URL {shown!r}: sslmode={sslmode!r} is not one of"
            f" {', '.join(SSL_MODES)}"
        )
    return {key: str(value) for key, value in params.items() if value is not None}


class Database:
    """An open connection; every method raises ``StateStoreError`` on failure.
    Safe from several threads: one statement or transaction at a time."""

    def __init__(self, connection: psycopg.Connection[Row], location: str) -> None:
        self._connection = connection
        self.location = location
        self.mutex = threading.RLock()

    @classmethod
    def connect(cls, url: str) -> Database:
        params = check_url(url)
        location = mask_url(url)
        for key, value in _DEFAULTS.items():
            params.setdefault(key, value)
        try:
            connection = psycopg.connect(
                conninfo.make_conninfo("", **params), autocommit=True
            )
        except psycopg.Error as exc:
            raise StateStoreError(
                f"state database {location}: {connect_failure(exc, params)};"
                " nothing ran"
            ) from None
        return cls(connection, location)

    @property
    def backend_pid(self) -> int:
        return int(self._connection.info.backend_pid)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._translated():
            return self._connection.execute(sql, params or None).fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._translated():
            self._connection.execute(sql, params or None)

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for many rows, sent as one batch (libpq pipeline)."""
        if not rows:
            return
        with self._translated(), self._connection.cursor() as cursor:
            cursor.executemany(sql, rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A transaction (READ COMMITTED: each statement sees what committed before
        it started), committed when the block ends, rolled back on an error."""
        with self.mutex, self._translated(), self._connection.transaction():
            yield

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self._connection.close()

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        with self.mutex:
            try:
                yield
            except psycopg.Error as exc:
                raise StateStoreError(
                    f"state database {self.location}: {_cause(exc)}"
                ) from None


def connect_failure(exc: psycopg.Error, params: dict[str, str]) -> str:
    """Why a connection could not be made, in our words."""
    text = str(exc)
    state = exc.sqlstate
    user = params.get("user") or "the default user"
    if state == "28P01" or "password authentication failed" in text:
        return (
            f"authentication failed for {user}: wrong password (the password comes"
            " from the URL, PGPASSWORD or ~/.pgpass)"
        )
    if "no password supplied" in text or "fe_sendauth" in text:
        return (
            f"authentication failed for {user}: the server wants a password and"
            " none was given (put it in ~/.pgpass or PGPASSWORD)"
        )
    if state == "28000" or "authentication failed" in text or "pg_hba" in text:
        return f"authentication failed for {user}: {_server_words(text)}"
    tls = _tls_problem(text, params)
    if tls is not None:
        return tls
    if state == "3D000" or re.search(r'database ".*" does not exist', text):
        return f"database {params.get('dbname', '')!r} does not exist (createdb it)"
    return _reach_problem(text, params)


def _tls_problem(text: str, params: dict[str, str]) -> str | None:
    mode = params.get("sslmode", "prefer")
    if "server does not support SSL" in text:
        return (
            f"TLS: sslmode={mode} requires TLS and the server does not offer it"
            " (enable ssl on the server, or choose another sslmode)"
        )
    if "root certificate file" in text:
        return (
            f"TLS: sslmode={mode} checks the server's certificate and needs the CA"
            " certificate: give sslrootcert=FILE in the URL"
        )
    if "certificate verify failed" in text:
        return (
            "TLS: the server's certificate is not signed by the CA in sslrootcert"
            f" (sslmode={mode})"
        )
    if "does not match host name" in text:
        return f"TLS: the server's certificate is for another host name ({mode})"
    if "SSL" in text or "certificate" in text:
        return f"TLS (sslmode={mode}): {_server_words(text)}"
    return None


def _reach_problem(text: str, params: dict[str, str]) -> str:
    host = params.get("host") or "the default socket"
    where = f"{host}:{params['port']}" if params.get("port") else host
    if "Connection refused" in text or "No such file or directory" in text:
        return f"connection refused: no PostgreSQL server is listening at {where}"
    if "resolve host" in text or "translate host name" in text:
        return f"cannot resolve the host name {host!r}"
    if "timeout expired" in text:
        seconds = params.get("connect_timeout", "")
        return f"no answer from {where} within {seconds}s (connect_timeout)"
    return f"cannot connect to {where}: {_server_words(text)}"


def _server_words(text: str) -> str:
    """The meaningful line of a libpq message, without its prefixes."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = lines[0] if lines else text
    first = re.sub(r"^connection (?:failed|is bad): ", "", first)
    first = re.sub(r"^connection to server .*? failed: ", "", first)
    return mask_url(first.replace("FATAL:  ", "").strip())


def _cause(exc: psycopg.Error) -> str:
    # a server-reported error (a deadlock, a serialization failure) has a SQLSTATE
    # outside class 08; only the rest means the connection itself is gone
    lost = exc.sqlstate is None or exc.sqlstate.startswith("08")
    if lost and isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return f"connection lost ({_server_words(str(exc))})"
    return _server_words(str(exc))
