"""Shared test set-up: puts app/ on sys.path and builds an Api on a temp database.

Imported first by every test module (`import support`). A release may ship
`tests/fixtures/NNNN_name.sql`: the unit tests' databases then apply it instead of
migration NNNN's up SQL (so a test controls its own rows, e.g. fee rates).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

RELEASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(RELEASE_DIR / "app"))

from api import Api, Request  # noqa: E402
from database import connect  # noqa: E402
from migrator import Migration, discover, migrate  # noqa: E402
from release import load_release  # noqa: E402
from settings import load_settings  # noqa: E402
from store import ensure_admin  # noqa: E402

__all__ = ["Request", "connect", "ensure_admin", "replace"]

SECRET = "unit-test-secret-that-is-long-enough-0123"

# The API logs every request; tests that read the log add their own handler.
logging.getLogger("service").addHandler(logging.NullHandler())
logging.getLogger("service").propagate = False
FIXTURES_DIR = RELEASE_DIR / "tests" / "fixtures"


def fixture_migrations() -> dict[int, Migration]:
    """The release's migrations, with tests/fixtures/NNNN_*.sql as NNNN's up SQL."""
    migrations = discover(load_release().migrations_dir)
    for fixture in sorted(FIXTURES_DIR.glob("*.sql")):
        version = int(fixture.name[:4])
        up_sql = fixture.read_text(encoding="utf-8")
        migrations[version] = replace(migrations[version], up_sql=up_sql)
    return migrations


def migrated_db(directory: Path, version: int | None = None) -> Path:
    """A database at `version` (default: the release's schema version)."""
    release = load_release()
    path = directory / "app.db"
    conn = connect(path, create=True)
    try:
        target = release.schema_version if version is None else version
        migrate(conn, target, fixture_migrations())
    finally:
        conn.close()
    return path


def make_api(db_path: Path, **env: str) -> Api:
    values = {
        "DATABASE_URL": f"sqlite:///{db_path}",
        "JWT_SECRET": SECRET,
        "PASSWORD_HASH_ITERATIONS": "1000",
        **env,
    }
    return Api(load_settings(values), load_release())


def call(
    api: Api,
    method: str,
    path: str,
    payload: Any = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """(status, decoded JSON body) of one request through Api.handle."""
    all_headers = dict(headers or {})
    if token:
        all_headers["authorization"] = f"Bearer {token}"
    body = b"" if payload is None else json.dumps(payload).encode()
    response = api.handle(Request(method, path, all_headers, body))
    decoded = json.loads(response.body) if response.body else None
    return response.status, decoded


def register_and_login(api: Api, email: str, password: str = "password-123") -> str:
    call(api, "POST", "/register", {"email": email, "password": password})
    status, body = call(api, "POST", "/login", {"email": email, "password": password})
    assert status == 200, body
    return str(body["token"])
