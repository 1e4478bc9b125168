#!/usr/bin/env python3
"""Deploy-root process control for the example service (shared by every release).

    python servicectl.py --root ROOT <command> [options]

A deploy root holds:

    releases/<version>/   unpacked release artefacts (see `unpack`; build.py makes them)
    current -> releases/<version>   switched atomically (see `switch`)
    run/service.pid, run/service.port, run/service.version
    log/service.log       stdout+stderr of the service, appended: JSON lines
    backups/app-<UTC timestamp>.db
    state/last_good       the version recorded by `mark-good`
    state/dev_jwt_fingerprints   SHA-256 of every JWT secret a development start used

Every command prints one result line on stdout (the last line is the answer) and
errors on stderr. Exit codes: 0 done, 1 failed, 2 bad usage, 3 not running
(`status` only). Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from collections.abc import Callable

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
DEFAULT_PORT = 8080
LOG_TAIL_LINES = 20
_VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+-]*$")
_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")


class CtlError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True)
class Layout:
    """The paths of one deploy root."""

    root: Path

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def current(self) -> Path:
        return self.root / "current"

    @property
    def pid_file(self) -> Path:
        return self.root / "run" / "service.pid"

    @property
    def port_file(self) -> Path:
        return self.root / "run" / "service.port"

    @property
    def version_file(self) -> Path:
        return self.root / "run" / "service.version"

    @property
    def log_file(self) -> Path:
        return self.root / "log" / "service.log"

    @property
    def backups(self) -> Path:
        return self.root / "backups"

    @property
    def last_good_file(self) -> Path:
        return self.root / "state" / "last_good"

    @property
    def dev_fingerprints_file(self) -> Path:
        return self.root / "state" / "dev_jwt_fingerprints"

    def release(self, version: str) -> Path:
        if not _VERSION_RE.match(version) or ".." in version:
            raise CtlError(f"invalid version {version!r}", EXIT_USAGE)
        return self.releases / version


# -- small parsing helpers ----------------------------------------------------


def parse_duration(text: str) -> float:
    """'10s', '500ms', '2m' or a bare number of seconds."""
    match = _DURATION_RE.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 10s, 500ms)")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match[2]]
    return float(match[1]) * scale


def database_path(url: str) -> Path:
    """The file of a `sqlite:////abs/app.db` (or `sqlite:///abs/app.db`) URL."""
    prefix = "sqlite://"
    rest = url[len(prefix) :] if url.startswith(prefix) else ""
    if not rest.startswith("/") or not rest.strip("/"):
        raise CtlError(f"DATABASE_URL must be sqlite:////abs/path/app.db, got {url!r}")
    return Path("/" + rest.lstrip("/"))


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # rename(2): readers see the old or the new file


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None


# -- releases and the `current` link ------------------------------------------


def current_version(layout: Layout) -> str | None:
    try:
        return layout.current.readlink().name
    except OSError:
        return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_sha256(args: argparse.Namespace) -> str:
    """The checksum the archive must have: --sha256, or its line in --sums."""
    if args.sha256:
        return str(args.sha256).lower()
    name = Path(args.archive).name
    try:
        lines = Path(args.sums).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CtlError(f"cannot read {args.sums}: {exc.strerror}") from exc
    for line in lines:
        digest, _, listed = line.partition("  ")
        if listed.lstrip("*") == name:
            return digest.lower()
    raise CtlError(f"{args.sums} has no checksum for {name}")


def _unsafe_member(members: list[tarfile.TarInfo], version: str) -> str | None:
    if not members:
        return "the archive is empty"
    for member in members:
        parts = Path(member.name).parts
        if (
            not parts
            or parts[0] != version
            or ".." in parts
            or member.name.startswith("/")
        ):
            return f"does not hold one directory {version}/ ({member.name!r})"
        if not (member.isfile() or member.isdir()):
            return f"{member.name!r} is not a regular file or a directory"
    return None


def _extract(archive: Path, version: str, staging: Path) -> Path:
    """Unpack into staging: only directories and regular files, all under
    ``<version>/`` (no links, no devices, no absolute or ``..`` paths), on every
    Python 3.11 (Debian's 3.11.2 has no tarfile extraction filters)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            problem = _unsafe_member(members, version)
            if problem:
                raise CtlError(f"{archive}: {problem}")
            for member in members:
                member.mode &= 0o755  # no setuid/setgid/sticky, nobody else writes
                tar.extract(member, staging, set_attrs=member.isfile())
    except (tarfile.TarError, OSError) as exc:
        raise CtlError(f"cannot unpack {archive}: {exc}") from exc
    tree = staging / version
    version_file = tree / "VERSION"
    declared = (
        version_file.read_text(encoding="utf-8").strip()
        if version_file.is_file()
        else None
    )
    if declared != version:
        raise CtlError(f"{archive}: VERSION says {declared!r}, not {version!r}")
    return tree


def cmd_unpack(layout: Layout, args: argparse.Namespace) -> int:
    target = layout.release(args.version)
    archive = Path(args.archive)
    if not archive.is_file():
        raise CtlError(f"no release artefact {archive}")
    expected = expected_sha256(args)
    actual = file_sha256(archive)
    if actual != expected:
        raise CtlError(
            f"checksum mismatch for {archive}: expected {expected}, got {actual}"
        )
    if target.exists() and not args.force:
        raise CtlError(f"{target} already exists (use --force to replace it)")
    if target.exists() and current_version(layout) == args.version:
        raise CtlError(f"{args.version} is the current release; switch away first")
    layout.releases.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{args.version}-", dir=layout.releases))
    try:
        tree = _extract(archive, args.version, staging)
        if target.exists():
            shutil.rmtree(target)
        tree.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(target)
    return 0


def cmd_remove(layout: Layout, args: argparse.Namespace) -> int:
    target = layout.release(args.version)
    if current_version(layout) == args.version:
        raise CtlError(f"refusing to remove {args.version}: it is the current release")
    if not target.exists():
        print(f"absent {target}")
        return 0
    shutil.rmtree(target)
    print(f"removed {target}")
    return 0


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in version.split("."))


def cmd_list(layout: Layout, args: argparse.Namespace) -> int:
    if layout.releases.is_dir():
        names = [p.name for p in layout.releases.iterdir() if p.is_dir()]
        for name in sorted(
            (n for n in names if not n.startswith(".")), key=_version_key
        ):
            print(name)
    return 0


def cmd_switch(layout: Layout, args: argparse.Namespace) -> int:
    target = layout.release(args.version)
    if not (target / "app" / "server.py").is_file():
        raise CtlError(f"release {args.version} is not unpacked in {layout.releases}")
    previous = current_version(layout)
    tmp_link = layout.root / f".current.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp_link.unlink()
    tmp_link.symlink_to(Path("releases") / args.version)
    tmp_link.replace(layout.current)  # rename(2) over the old link: atomic
    print(previous or "none")
    return 0


def cmd_current(layout: Layout, args: argparse.Namespace) -> int:
    print(current_version(layout) or "none")
    return 0


def cmd_mark_good(layout: Layout, args: argparse.Namespace) -> int:
    if not layout.release(args.version).is_dir():
        raise CtlError(f"release {args.version} is not unpacked")
    _write_atomic(layout.last_good_file, args.version + "\n")
    print(args.version)
    return 0


def cmd_last_good(layout: Layout, args: argparse.Namespace) -> int:
    print(_read_text(layout.last_good_file) or "none")
    return 0


# -- the service process ------------------------------------------------------


def _proc_state(pid: int) -> str | None:
    """The state letter from /proc (None where /proc is unavailable)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def is_alive(pid: int, *, starting: bool = False) -> bool:
    """True for a live (non-zombie) process running the service. ``starting``: the
    process was just spawned, so its command line may still be ours (servicectl's,
    between fork and exec)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if _proc_state(pid) == "Z":
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return b"server.py" in cmdline or (starting and b"servicectl.py" in cmdline)


def running_pid(layout: Layout) -> int | None:
    """The pid from the pid file if that process is alive; stale files are removed."""
    text = _read_text(layout.pid_file)
    if not text:
        return None
    if text.isdigit() and is_alive(int(text)):
        return int(text)
    layout.pid_file.unlink(missing_ok=True)
    return None


def _remembered_port(layout: Layout) -> int:
    text = _read_text(layout.port_file)
    return int(text) if text and text.isdigit() else DEFAULT_PORT


def _log_tail(layout: Layout, lines: int = LOG_TAIL_LINES) -> str:
    text = _read_text(layout.log_file) or "(log is empty)"
    return "\n".join(text.splitlines()[-lines:])


def fetch_json(url: str, timeout: float) -> tuple[int, object]:
    """(status, decoded body) of a GET; raises OSError when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None
    except ValueError as exc:
        raise OSError(f"not JSON: {exc}") from exc


def _probe_host(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0") else host


def wait_healthy(
    url: str,
    timeout: float,
    *,
    version: str | None = None,
    still_running: Callable[[], bool] = lambda: True,
) -> str:
    """Poll `url` until it answers 200 (with `version`, if given); last error text."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        if not still_running():
            raise CtlError("service process exited")
        try:
            status, body = fetch_json(url, timeout=min(2.0, max(timeout, 0.1)))
            seen = body.get("version") if isinstance(body, dict) else None
            if status == 200 and version in (None, seen):
                return f"version={seen}" if seen else json.dumps(body, sort_keys=True)
            last = f"HTTP {status}: {json.dumps(body)[:200]}"
        except OSError as exc:
            last = str(getattr(exc, "reason", exc))
        if time.monotonic() >= deadline:
            raise CtlError(f"{url} not healthy after {timeout:g}s: {last}")
        time.sleep(0.1)


def _spawn(layout: Layout, release_dir: Path, host: str, port: int) -> int:
    layout.log_file.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PORT": str(port), "HOST": host, "PYTHONUNBUFFERED": "1"}
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    marker = {"ts": stamp, "level": "info", "msg": "servicectl start"}
    marker.update(version=release_dir.name, port=port)
    with open(layout.log_file, "a", encoding="utf-8") as log:
        log.write(json.dumps(marker, separators=(",", ":")) + "\n")
        log.flush()
        process = subprocess.Popen(
            [sys.executable, str(release_dir / "app" / "server.py")],
            cwd=release_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    # Detached on purpose: the service outlives this command (reaped by init).
    process.returncode = 0
    _write_atomic(layout.pid_file, f"{process.pid}\n")
    _write_atomic(layout.port_file, f"{port}\n")
    _write_atomic(layout.version_file, f"{release_dir.name}\n")
    return process.pid


def record_dev_fingerprints(layout: Layout, env: dict[str, str]) -> None:
    """In development, remember the SHA-256 of every JWT secret the service is given
    (never the secret), so a production preflight can refuse one used here."""
    if (env.get("APP_ENV") or "development").strip() != "development":
        return
    given = [env.get("JWT_SECRET", ""), *env.get("JWT_PREVIOUS_SECRETS", "").split(",")]
    prints = {
        hashlib.sha256(s.strip().encode()).hexdigest() for s in given if s.strip()
    }
    path = layout.dev_fingerprints_file
    known = set((_read_text(path) or "").split())
    new = sorted(prints - known)
    if new:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write("".join(f"{digest}\n" for digest in new))


def start(layout: Layout, port: int, host: str, timeout: float) -> str:
    pid = running_pid(layout)
    if pid is not None:
        return f"already running pid={pid} port={_remembered_port(layout)}"
    if not layout.current.is_dir():
        raise CtlError(f"no current release in {layout.root} (run switch first)")
    release_dir = layout.current.resolve()
    version = (release_dir / "VERSION").read_text(encoding="utf-8").strip()
    record_dev_fingerprints(layout, dict(os.environ))
    pid = _spawn(layout, release_dir, host, port)
    url = f"http://{_probe_host(host)}:{port}/health"
    try:
        wait_healthy(
            url,
            timeout,
            version=version,
            still_running=lambda: is_alive(pid, starting=True),
        )
    except CtlError as exc:
        stop(layout, grace=2.0)
        raise CtlError(
            f"start failed: {exc}\n--- log tail ---\n{_log_tail(layout)}"
        ) from exc
    return f"started pid={pid} port={port} version={version}"


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, signum)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while is_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop(layout: Layout, grace: float) -> str:
    pid = running_pid(layout)
    if pid is None:
        return "not running"
    _signal_group(pid, signal.SIGTERM)
    how = "stopped"
    if not _wait_gone(pid, grace):
        _signal_group(pid, signal.SIGKILL)
        how = "killed"
        if not _wait_gone(pid, 5.0):
            raise CtlError(f"pid {pid} survived SIGKILL")
    layout.pid_file.unlink(missing_ok=True)
    return f"{how} pid={pid}"


def cmd_start(layout: Layout, args: argparse.Namespace) -> int:
    port = args.port or _remembered_port(layout)
    print(start(layout, port, args.host, args.timeout))
    return 0


def cmd_stop(layout: Layout, args: argparse.Namespace) -> int:
    print(stop(layout, args.grace))
    return 0


def cmd_restart(layout: Layout, args: argparse.Namespace) -> int:
    port = args.port or _remembered_port(layout)
    print(stop(layout, args.grace))
    print(start(layout, port, args.host, args.timeout))
    return 0


def cmd_status(layout: Layout, args: argparse.Namespace) -> int:
    pid = running_pid(layout)
    if pid is None:
        print("not running")
        return EXIT_NOT_RUNNING
    version = _read_text(layout.version_file) or "unknown"
    print(f"running pid={pid} port={_remembered_port(layout)} version={version}")
    return 0


def cmd_wait_healthy(layout: Layout, args: argparse.Namespace) -> int:
    port = args.port or _remembered_port(layout)
    url = f"http://{_probe_host(args.host)}:{port}{args.path}"
    detail = wait_healthy(url, args.timeout, version=args.version)
    print(f"healthy {url} {detail}")
    return 0


# -- database backup ----------------------------------------------------------


def _backup_target(layout: Layout) -> Path:
    layout.backups.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = layout.backups / f"app-{stamp}.db"
    counter = 1
    while target.exists():
        target = layout.backups / f"app-{stamp}-{counter}.db"
        counter += 1
    return target


def cmd_backup_db(layout: Layout, args: argparse.Namespace) -> int:
    url = args.database_url or os.environ.get("DATABASE_URL", "")
    if not url:
        raise CtlError("DATABASE_URL is not set (or pass --database-url)", EXIT_USAGE)
    source_path = database_path(url)
    target = _backup_target(layout)
    try:
        source = sqlite3.connect(f"file:{quote(str(source_path))}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise CtlError(f"cannot open {source_path}: {exc}") from exc
    try:
        with contextlib.closing(sqlite3.connect(target)) as copy:
            source.backup(copy)
    except sqlite3.Error as exc:
        target.unlink(missing_ok=True)
        raise CtlError(f"backup of {source_path} failed: {exc}") from exc
    finally:
        source.close()
    print(target)
    return 0


# -- command line -------------------------------------------------------------

COMMANDS: dict[str, tuple[str, Callable[[Layout, argparse.Namespace], int]]] = {
    "unpack": ("verify and unpack a release artefact", cmd_unpack),
    "remove": ("delete an unpacked release (never the current one)", cmd_remove),
    "list": ("list unpacked releases, oldest first", cmd_list),
    "switch": ("point ROOT/current at a release; prints the previous", cmd_switch),
    "current": ("print the current release or 'none'", cmd_current),
    "mark-good": ("record VERSION as the last known good release", cmd_mark_good),
    "last-good": ("print the last known good release or 'none'", cmd_last_good),
    "start": ("start the current release in the background", cmd_start),
    "stop": ("stop the service (SIGTERM, then SIGKILL)", cmd_stop),
    "restart": ("stop, then start on the same port", cmd_restart),
    "status": ("exit 0 if running, 3 if not", cmd_status),
    "wait-healthy": ("poll an endpoint until it answers 200", cmd_wait_healthy),
    "backup-db": (
        "copy the database to ROOT/backups (sqlite backup API)",
        cmd_backup_db,
    ),
}


def _add_arguments(name: str, sub: argparse.ArgumentParser) -> None:
    if name in ("unpack", "remove", "switch", "mark-good"):
        sub.add_argument("version")
    if name == "unpack":
        sub.add_argument("--archive", required=True, help="example-service-V.tar.gz")
        expected = sub.add_mutually_exclusive_group(required=True)
        expected.add_argument("--sha256", help="the archive's expected SHA-256 (hex)")
        expected.add_argument("--sums", help="a SHA256SUMS file listing the archive")
        sub.add_argument("--force", action="store_true", help="replace if present")
    if name in ("start", "restart", "wait-healthy"):
        sub.add_argument("--port", type=int, help="default: the remembered port")
        sub.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        sub.add_argument("--timeout", type=parse_duration, default=10.0)
    if name in ("stop", "restart"):
        sub.add_argument("--grace", type=parse_duration, default=10.0)
    if name == "wait-healthy":
        sub.add_argument("--path", default="/health", help="e.g. /test-db")
        sub.add_argument("--version", help="also require this version")
    if name == "backup-db":
        sub.add_argument("--database-url", help="default: $DATABASE_URL")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="servicectl.py", description="deploy-root process control"
    )
    root_help = "deploy root (default: $SERVICE_ROOT)"
    parser.add_argument(
        "--root", default=os.environ.get("SERVICE_ROOT"), help=root_help
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, _) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--root", default=argparse.SUPPRESS, help=root_help)
        _add_arguments(name, sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.root:
        parser.error("--root is required (or set SERVICE_ROOT)")
    layout = Layout(Path(args.root).absolute())
    try:
        return COMMANDS[args.command][1](layout, args)
    except CtlError as exc:
        print(f"servicectl {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
