"""End-to-end smoke checks against a running service, over real HTTP (urllib).

Registers a fresh throw-away user, then walks login, profile, wallet and trade,
and checks that the admin queue refuses that user. Prints one line per check;
the first failing check stops the run and is named on the last line.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from collections.abc import Callable


class CheckFailedError(Exception):
    """One smoke check did not see what it expected."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any


class Client:
    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def call(
        self, method: str, path: str, *, payload: Any = None, token: str | None = None
    ) -> Reply:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.base_url + path, data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return Reply(response.status, _decode(response.read()))
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, _decode(exc.read()))
        except (urllib.error.URLError, OSError) as exc:
            raise CheckFailedError(f"cannot reach {self.base_url}: {exc}") from exc


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def expect(reply: Reply, status: int) -> Any:
    if reply.status != status:
        body = json.dumps(reply.body)[:200]
        raise CheckFailedError(f"HTTP {reply.status} (expected {status}): {body}")
    return reply.body


class SmokeRun:
    """The checks, in order; each returns a short detail for its output line."""

    def __init__(self, client: Client, admin: tuple[str, str] | None) -> None:
        self.client = client
        self.admin = admin
        self.email = f"smoke-{int(time.time())}-{secrets.token_hex(3)}@example.test"
        self.password = secrets.token_urlsafe(12)
        self.token = ""
        self.trade_id = 0

    def checks(self) -> list[tuple[str, Callable[[], str]]]:
        steps = [
            ("health", self.health),
            ("register", self.register),
            ("login", self.login),
            ("profile", self.profile),
            ("auth-required", self.auth_required),
            ("wallet", self.wallet),
            ("trade", self.trade),
            ("admin-queue-forbidden", self.admin_forbidden),
        ]
        if self.admin is not None:
            steps.append(("admin-queue", self.admin_queue))
        return steps

    def health(self) -> str:
        body = expect(self.client.call("GET", "/health"), 200)
        return f"version {body.get('version')}"

    def register(self) -> str:
        payload = {"email": self.email, "password": self.password}
        expect(self.client.call("POST", "/register", payload=payload), 201)
        return self.email

    def login(self) -> str:
        payload = {"email": self.email, "password": self.password}
        body = expect(self.client.call("POST", "/login", payload=payload), 200)
        self.token = str(body["token"])
        return "token issued"

    def profile(self) -> str:
        body = expect(self.client.call("GET", "/profile", token=self.token), 200)
        if body.get("email") != self.email:
            raise CheckFailedError(f"profile shows {body.get('email')!r}")
        return f"user id {body.get('id')}"

    def auth_required(self) -> str:
        expect(self.client.call("GET", "/profile"), 401)
        return "401 without a token"

    def wallet(self) -> str:
        body = expect(self.client.call("GET", "/wallet", token=self.token), 200)
        return json.dumps(body, sort_keys=True)

    def trade(self) -> str:
        payload = {"symbol": "ACME", "qty": 1}
        reply = self.client.call("POST", "/trade", payload=payload, token=self.token)
        body = expect(reply, 201)
        self.trade_id = int(body["id"])
        wallet = expect(self.client.call("GET", "/wallet", token=self.token), 200)
        if wallet.get("positions", {}).get("ACME") != 1:
            raise CheckFailedError(f"wallet after trade: {json.dumps(wallet)}")
        return f"trade {self.trade_id} ACME x1"

    def admin_forbidden(self) -> str:
        expect(self.client.call("GET", "/admin/queue", token=self.token), 403)
        return "403 for a normal user"

    def admin_queue(self) -> str:
        assert self.admin is not None
        payload = {"email": self.admin[0], "password": self.admin[1]}
        token = expect(self.client.call("POST", "/login", payload=payload), 200)[
            "token"
        ]
        body = expect(self.client.call("GET", "/admin/queue", token=token), 200)
        ids = [entry.get("id") for entry in body.get("pending", [])]
        if self.trade_id not in ids:
            raise CheckFailedError(f"trade {self.trade_id} not in the admin queue")
        return f"{len(ids)} pending, includes trade {self.trade_id}"


def run_smoke(
    base_url: str, *, admin: tuple[str, str] | None, timeout: float, out: TextIO
) -> int:
    """Run every check; 0 when all pass, 1 at the first failure (named last)."""
    run = SmokeRun(Client(base_url, timeout), admin)
    checks = run.checks()
    for name, check in checks:
        try:
            detail = check()
        except (
            CheckFailedError,
            AttributeError,
            KeyError,
            TypeError,
            ValueError,
        ) as exc:
            print(f"FAIL {name}: {exc}", file=out)
            print(f"smoke failed: {name}", file=out)
            return 1
        print(f"ok   {name}: {detail}", file=out)
    print(f"smoke passed: {len(checks)} checks", file=out)
    return 0
