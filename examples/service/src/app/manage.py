"""Management CLI of one release: migrate, schema-version, create-admin, smoke.

    python app/manage.py migrate --to N | --to-release [--dry-run]
    python app/manage.py schema-version
    python app/manage.py create-admin --email E      (password from $ADMIN_PASSWORD)
    python app/manage.py smoke --url URL [--admin-email E --admin-password-env VAR]

Exit codes: 0 done, 1 the operation failed, 2 bad input or configuration.
Results go to stdout (the last line is the one to parse); errors go to stderr.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from typing import TYPE_CHECKING

import store
from database import DatabaseUnavailableError, connect, schema_version
from migrator import MigrationError, discover, migrate, plan
from release import load_release
from settings import (
    ConfigError,
    database_path_from_env,
    password_iterations_from_env,
)
from smoke import run_smoke

if TYPE_CHECKING:
    from collections.abc import Callable

MIN_ADMIN_PASSWORD = 12
EXIT_FAILED = 1
EXIT_INVALID = 2


class CommandError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def cmd_migrate(args: argparse.Namespace) -> int:
    release = load_release()
    target = release.schema_version if args.to_release else int(args.to)
    migrations = discover(release.migrations_dir)
    path = database_path_from_env()
    if args.dry_run and not path.exists():
        conn = sqlite3.connect(":memory:")  # plan from an empty schema
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(path, create=True)
    try:
        current = schema_version(conn)
        if current == target:
            print(f"schema already at version {target}")
            return 0
        if args.dry_run:
            for step in plan(conn, target, migrations):
                print(f"would apply {step.label}")
            print(f"schema version {current} -> {target} (dry run)")
            return 0
        report = migrate(conn, target, migrations)
    finally:
        conn.close()
    for step in report.steps:
        print(f"applied {step.label}")
    print(f"schema version {report.from_version} -> {report.to_version}")
    return 0


def cmd_schema_version(args: argparse.Namespace) -> int:
    conn = connect(database_path_from_env())
    try:
        print(schema_version(conn))
    finally:
        conn.close()
    return 0


def _admin_password() -> str:
    password = os.environ.get("ADMIN_PASSWORD", "")
    if not password:
        raise CommandError("ADMIN_PASSWORD is not set", EXIT_INVALID)
    if len(password) < MIN_ADMIN_PASSWORD:
        raise CommandError(
            f"ADMIN_PASSWORD must be at least {MIN_ADMIN_PASSWORD} characters",
            EXIT_INVALID,
        )
    return password


def cmd_create_admin(args: argparse.Namespace) -> int:
    try:
        email = store.check_email(args.email)
    except store.InvalidInputError as exc:
        raise CommandError(str(exc), EXIT_INVALID) from exc
    password = _admin_password()
    conn = connect(database_path_from_env())
    try:
        outcome = store.ensure_admin(
            conn, email, password, iterations=password_iterations_from_env()
        )
    finally:
        conn.close()
    print(outcome)
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    admin = None
    if args.admin_email:
        password = os.environ.get(args.admin_password_env, "")
        if not password:
            raise CommandError(f"{args.admin_password_env} is not set", EXIT_INVALID)
        admin = (args.admin_email, password)
    return run_smoke(args.url, admin=admin, timeout=args.timeout, out=sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="manage.py", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    migrate_cmd = commands.add_parser("migrate", help="move the schema up or down")
    target = migrate_cmd.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", type=int, metavar="N", help="target schema version")
    target.add_argument(
        "--to-release", action="store_true", help="this release's SCHEMA_VERSION"
    )
    migrate_cmd.add_argument("--dry-run", action="store_true", help="print the plan")
    migrate_cmd.set_defaults(func=cmd_migrate)
    version_cmd = commands.add_parser("schema-version", help="print the schema version")
    version_cmd.set_defaults(func=cmd_schema_version)
    admin_cmd = commands.add_parser("create-admin", help="create or promote an admin")
    admin_cmd.add_argument("--email", required=True)
    admin_cmd.set_defaults(func=cmd_create_admin)
    smoke_cmd = commands.add_parser("smoke", help="end-to-end checks over HTTP")
    smoke_cmd.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8080")
    smoke_cmd.add_argument("--admin-email", help="also check this admin's queue access")
    smoke_cmd.add_argument("--admin-password-env", default="ADMIN_PASSWORD")
    smoke_cmd.add_argument("--timeout", type=float, default=5.0, help="per request (s)")
    smoke_cmd.set_defaults(func=cmd_smoke)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except CommandError as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except ConfigError as exc:
        print(f"{args.command}: config error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except (DatabaseUnavailableError, MigrationError, sqlite3.Error) as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
