#!/usr/bin/env python3
"""A small file-backed secret store: the stand-in for Vault, pass or sops here.

    python3 examples/secretstore.py [--dir DIR] get NAME      print the value
    python3 examples/secretstore.py [--dir DIR] put NAME      the value from stdin
    python3 examples/secretstore.py [--dir DIR] delete NAME
    python3 examples/secretstore.py [--dir DIR] list          names only
    python3 examples/secretstore.py generate [--bytes 32]     a new random value

One file per secret, mode 0600, in a directory of mode 0700 owned by the user:
`--dir`, else `$SECRET_STORE_DIR`, else
`${XDG_STATE_HOME:-~/.local/state}/secret-store`.
`get` refuses a store or a file that others can read (as ssh does with keys).
`put` reads one value from stdin (one trailing newline stripped; empty is refused)
and replaces the file atomically. `generate` prints 64 hex digits (256 bits) by
default and stores nothing. Values never appear in arguments, so never in a
process listing.

Runbooks read a secret with a command source, e.g. `secrets: {jwt_secret: {command:
[python3, ../examples/secretstore.py, get, jwt_secret]}}` (`get` of a missing name
exits 3, which `optional: true` turns into an empty value).

Exit codes: 0 done, 1 failed (insecure or unreadable store), 2 bad usage, 3 no such
secret. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import stat
import sys
from pathlib import Path

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_MISSING = 3
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class StoreError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def default_dir() -> Path:
    if os.environ.get("SECRET_STORE_DIR"):
        return Path(os.environ["SECRET_STORE_DIR"])
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "secret-store"


class Store:
    def __init__(self, directory: Path) -> None:
        self.directory = directory.absolute()

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise StoreError(f"invalid secret name {name!r}", EXIT_USAGE)
        return self.directory / name

    def _check_private(self, path: Path, mode: int) -> None:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            raise StoreError(f"{path} is a symlink: refused")
        if info.st_uid != os.getuid():
            raise StoreError(f"{path} belongs to another user: refused")
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise StoreError(
                f"{path} is open to group or others (chmod {mode:o} {path})"
            )

    def _ready_dir(self, create: bool) -> bool:
        if not self.directory.exists():
            if not create:
                return False
            self.directory.mkdir(mode=0o700, parents=True)
        self._check_private(self.directory, 0o700)
        return True

    def get(self, name: str) -> str:
        path = self._path(name)
        if not self._ready_dir(create=False) or not path.exists():
            raise StoreError(f"no secret {name} in {self.directory}", EXIT_MISSING)
        self._check_private(path, 0o600)
        return path.read_text(encoding="utf-8")

    def put(self, name: str, value: str) -> None:
        path = self._path(name)
        if not value:
            raise StoreError(f"refusing an empty value for {name}", EXIT_USAGE)
        self._ready_dir(create=True)
        tmp = self.directory / f".{name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(value)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(path)  # rename(2): readers see the old or the new value
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def delete(self, name: str) -> bool:
        path = self._path(name)
        if not self._ready_dir(create=False) or not path.exists():
            return False
        path.unlink()
        return True

    def names(self) -> list[str]:
        if not self._ready_dir(create=False):
            return []
        return sorted(p.name for p in self.directory.iterdir() if _NAME.match(p.name))


def _read_stdin() -> str:
    value = sys.stdin.read()
    return value[:-1] if value.endswith("\n") else value


def run(args: argparse.Namespace) -> int:
    if args.command == "generate":
        if not 16 <= args.bytes <= 1024:
            raise StoreError("--bytes must be between 16 and 1024", EXIT_USAGE)
        print(secrets.token_hex(args.bytes))
        return 0
    store = Store(args.dir or default_dir())
    if args.command == "get":
        print(store.get(args.name))
    elif args.command == "put":
        store.put(args.name, _read_stdin())
        print(f"stored {args.name}")
    elif args.command == "delete":
        print(f"{'deleted' if store.delete(args.name) else 'absent'} {args.name}")
    else:
        for name in store.names():
            print(name)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="secretstore.py", description="a file-backed secret store"
    )
    parser.add_argument("--dir", type=Path, help="default: $SECRET_STORE_DIR")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("get", "put", "delete"):
        commands.add_parser(name).add_argument("name")
    commands.add_parser("list")
    generate = commands.add_parser("generate", help="print a new random value")
    generate.add_argument("--bytes", type=int, default=32, help="default 32 (256 bits)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except StoreError as exc:
        print(f"secretstore {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(
            f"secretstore {args.command}: {exc.strerror}: {exc.filename}",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
