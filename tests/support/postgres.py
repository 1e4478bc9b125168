"""A real PostgreSQL server for the tests and ``bench/``: ``initdb`` in a temp dir,
``postgres`` listening on a unix socket in that dir (and, when asked, on a free
127.0.0.1 port), torn down afterwards. It imports nothing from pytest.

initdb and postgres refuse to run as root: as root the server runs as Debian's
``postgres`` system user (the temp dir is chowned to it, the processes started
through ``setpriv``); otherwise as the current user. Authentication is ``trust``
except for roles made with ``create_role(..., password=...)``, which must log in
with a password (scram-sha-256), so tests can see a wrong one refused.

``fsync`` (``durable=False``, the tests' default) only decides whether the server
survives a crash of *its own* machine, which no test causes; the benchmark keeps the
defaults (``durable=True``), so a commit costs what it costs in production.

Failure is loud: ``PostgresStartError`` carries the server's log. Nothing here skips.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

_START_TIMEOUT = 30.0
SUPERUSER = "postgres"


class PostgresStartError(RuntimeError):
    """PostgreSQL could not be started; the message ends with its log."""


def find_binary(name: str) -> str:
    """``initdb`` / ``postgres`` from PATH, else Debian's newest
    ``/usr/lib/postgresql/N/bin``."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    if candidates:
        return str(candidates[-1])
    raise PostgresStartError(
        f"{name} not found: install PostgreSQL (apt-get install -y postgresql)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """``start()``, then ``url(dbname)``, ``create_database()``, ``stop()``."""

    def __init__(self, *, tcp: bool = False, durable: bool = False) -> None:
        self.tcp = tcp
        self.durable = durable
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["setpriv", "--reuid=postgres", "--regid=postgres"]
            self._as += ["--init-groups", "--"]
        self.directory = Path(tempfile.mkdtemp(prefix="runbook-pg-", dir=self._base()))
        if self._as:
            entry = pwd.getpwnam("postgres")
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        self.data = self.directory / "data"
        self.log_path = self.directory / "postgres.log"
        self.port = _free_port()  # also names the socket file (.s.PGSQL.PORT)
        self._process: subprocess.Popen[bytes] | None = None
        self._counter = 0

    def _base(self) -> str:
        """$TMPDIR when the server's user can reach it, else /tmp (a root-only
        TMPDIR, as pytest's, cannot hold a server run as ``postgres``)."""
        base = tempfile.gettempdir()
        if not self._as:
            return base
        reach = subprocess.run([*self._as, "test", "-x", base], check=False)
        return base if reach.returncode == 0 else "/tmp"

    # -- facts -------------------------------------------------------------------------

    @property
    def socket_dir(self) -> str:
        return str(self.directory)

    def url(
        self,
        dbname: str = "postgres",
        *,
        user: str = SUPERUSER,
        password: str | None = None,
        tcp: bool = False,
        **params: str,
    ) -> str:
        """A ``postgresql://`` URL for a database on this server (the socket, or
        127.0.0.1 with ``tcp``)."""
        auth = urllib.parse.quote(user, safe="")
        if password is not None:
            auth += ":" + urllib.parse.quote(password, safe="")
        if tcp:
            query = urllib.parse.urlencode(params)
            base = f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"
            return base + (f"?{query}" if query else "")
        query = urllib.parse.urlencode({"host": self.socket_dir, "port": self.port})
        extra = urllib.parse.urlencode(params)
        return f"postgresql://{auth}@/{dbname}?{query}" + (f"&{extra}" if extra else "")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> PostgresServer:
        try:
            self._initdb()
            self._configure()
            self._launch()
            self._wait_ready()
        except BaseException:
            log = self.log()
            self.stop()
            raise PostgresStartError(
                f"PostgreSQL did not start in {self.directory}:\n{log}"
            ) from None
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGQUIT)  # immediate shutdown: tests are done
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- databases and roles -------------------------------------------------------

    def create_database(self, prefix: str = "test") -> str:
        """A new empty database; returns its URL."""
        self._counter += 1
        name = f"{prefix}_{os.getpid()}_{self._counter}"
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def create_role(self, name: str, password: str) -> None:
        self.sql(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'")

    def sql(self, statement: str, dbname: str = "postgres") -> list[tuple[object, ...]]:
        """Run one statement as the superuser (autocommit)."""
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True) as connection:
            cursor = connection.execute(statement)
            return cursor.fetchall() if cursor.description else []

    # -- internals -------------------------------------------------------------------

    def _initdb(self) -> None:
        argv = [find_binary("initdb"), "-D", str(self.data), "-U", SUPERUSER]
        argv += ["--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"]
        done = subprocess.run(
            [*self._as, *argv], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            self.log_path.write_text(done.stdout + done.stderr)
            raise PostgresStartError("initdb failed")

    def _configure(self) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'" if self.tcp else "''",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.directory}'",
            "max_connections": "100",
            "shared_buffers": "32MB",
            "fsync": "on" if self.durable else "off",
            "full_page_writes": "on" if self.durable else "off",
            "log_min_messages": "warning",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        (self.data / "pg_hba.conf").write_text(
            "local all runbook_pw scram-sha-256\n"
            "host  all runbook_pw 127.0.0.1/32 scram-sha-256\n"
            "local all all trust\n"
            "host  all all 127.0.0.1/32 trust\n"
        )

    def _launch(self) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [*self._as, find_binary("postgres"), "-D", str(self.data)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise PostgresStartError("postgres exited")
            with contextlib.suppress(psycopg.OperationalError):
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            time.sleep(0.05)
        raise PostgresStartError("not ready in time")
