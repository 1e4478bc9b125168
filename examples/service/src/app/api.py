"""The HTTP API as a plain function of a Request: routing, auth, JSON and errors.

No sockets here (server.py adapts http.server to `Api.handle`), so the unit tests
call `handle` directly. Every error leaves as JSON: {"error": code, "message": ...}.
Every request gets a request id (a valid incoming X-Request-ID, else a new one),
echoed in the response and on each log line of that request, and leaves one JSON
log line (see logs.py); every error leaves one more.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import static
import store
from auth import (
    TokenError,
    TokenExpiredError,
    decode_token,
    hash_password,
    issue_token,
    verify_password,
)
from database import DatabaseUnavailableError, connect, schema_version
from logs import REQUEST_ID_HEADER, request_id_from
from metrics import CONTENT_TYPE, Metrics

if TYPE_CHECKING:
    from release import Release
    from settings import Settings

log = logging.getLogger("service.api")

MAX_BODY = 64 * 1024
_JSON = "application/json"


@dataclass(slots=True)
class Trace:
    """What the log line of one request says about it, filled in while it runs."""

    request_id: str = ""
    route: str = "unmatched"
    user_id: int | None = None

    def fields(self) -> dict[str, Any]:
        known = {"request_id": self.request_id, "route": self.route}
        return known if self.user_id is None else {**known, "user_id": self.user_id}


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes = b""
    trace: Trace = field(default_factory=Trace, compare=False)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = _JSON
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def json_response(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload, sort_keys=True).encode() + b"\n")


def error_response(status: int, code: str, message: str) -> Response:
    return json_response(status, {"error": code, "message": message})


Handler = Callable[["Api", Request], Response]


class Api:
    """Routes requests for one release running with one set of settings."""

    def __init__(self, settings: Settings, release: Release) -> None:
        self.settings = settings
        self.release = release
        self.metrics = Metrics(release.version, release.schema_version)
        # Unknown emails still cost one hash check, so timing does not reveal them.
        self._dummy_hash = hash_password(
            "not-a-password", iterations=settings.password_iterations
        )

    def handle(self, request: Request) -> Response:
        """Answer one request: routed, logged, with its X-Request-ID."""
        return self._observed(request, self._respond)

    def reject(self, request: Request, response: Response) -> Response:
        """Log and send an answer the server made itself (body too large...)."""
        return self._observed(request, lambda _: response)

    def _observed(
        self, request: Request, respond: Callable[[Request], Response]
    ) -> Response:
        started = time.perf_counter()
        trace = request.trace
        trace.request_id, refused = request_id_from(
            request.headers.get("x-request-id", "")
        )
        if refused:
            self._log(logging.WARNING, "request id refused, made a new one", trace)
        response = self._with_cors(request, respond(request))
        elapsed = time.perf_counter() - started
        self.metrics.observe_request(
            request.method, trace.route, response.status, elapsed
        )
        level = logging.INFO
        if response.status >= 400:
            level = logging.ERROR if response.status >= 500 else logging.WARNING
        self._log(
            level,
            "request",
            trace,
            method=request.method,
            status=response.status,
            duration_ms=round(elapsed * 1000, 3),
        )
        headers = (*response.headers, (REQUEST_ID_HEADER, trace.request_id))
        return replace(response, headers=headers)

    def _log(
        self,
        level: int,
        message: str,
        trace: Trace,
        exc_info: bool = False,
        **fields: Any,
    ) -> None:
        extra = {"fields": {**trace.fields(), **fields}}
        log.log(level, message, exc_info=exc_info, extra=extra)

    def _respond(self, request: Request) -> Response:
        path = request.path.split("?", 1)[0]
        try:
            return self._dispatch(request, path)
        except HttpError as exc:
            return error_response(exc.status, exc.code, exc.message)
        except store.InvalidInputError as exc:
            return error_response(400, "invalid_input", str(exc))
        except store.ConflictError as exc:
            return error_response(409, "conflict", str(exc))
        except (DatabaseUnavailableError, sqlite3.OperationalError) as exc:
            kind = (
                "unavailable" if isinstance(exc, DatabaseUnavailableError) else "query"
            )
            self.metrics.db_error(kind)
            self._log(logging.ERROR, "database error", request.trace, error=str(exc))
            return error_response(503, "database_error", str(exc))
        except Exception:
            self._log(logging.ERROR, "internal error", request.trace, exc_info=True)
            return error_response(500, "internal_error", "internal server error")

    def _dispatch(self, request: Request, path: str) -> Response:
        methods = ROUTES.get(path)
        if methods is not None:
            request.trace.route = path
        if request.method == "OPTIONS":
            return Response(204, b"")
        if methods is None:
            if request.method in ("GET", "HEAD"):
                request.trace.route = "static"
                return self._static(path)
            raise HttpError(404, "not_found", f"no route for {path}")
        handler = methods.get(request.method)
        if handler is None:
            raise HttpError(405, "method_not_allowed", f"use {', '.join(methods)}")
        return handler(self, request)

    def _with_cors(self, request: Request, response: Response) -> Response:
        origin = request.headers.get("origin", "")
        allowed = self.settings.cors_origins
        if not origin or (origin not in allowed and "*" not in allowed):
            return response
        extra = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        if request.method == "OPTIONS":
            extra += [
                ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
                ("Access-Control-Allow-Headers", "Authorization, Content-Type"),
                ("Access-Control-Max-Age", "600"),
            ]
        return Response(
            response.status,
            response.body,
            response.content_type,
            response.headers + tuple(extra),
        )

    def _static(self, path: str) -> Response:
        asset = static.read_asset(self.release.frontend_dist, path)
        if asset is not None:
            return Response(200, asset[0], asset[1])
        if path == "/":
            return json_response(
                200, {"service": "example-service", "version": self.release.version}
            )
        raise HttpError(404, "not_found", f"no route for {path}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = connect(self.settings.database_path)
        try:
            yield conn
        finally:
            conn.close()

    def _body(self, request: Request) -> dict[str, Any]:
        try:
            payload = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, "invalid_json", "body must be a JSON object") from exc
        if not isinstance(payload, dict):
            raise HttpError(400, "invalid_json", "body must be a JSON object")
        return payload

    def _user(self, request: Request, conn: sqlite3.Connection) -> store.User:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            self.metrics.auth_failure("missing_token")
            raise HttpError(401, "unauthorized", "missing Bearer token")
        try:
            claims = decode_token(
                token.strip(),
                self.settings.jwt_secret,
                previous=self.settings.jwt_previous_secrets,
            )
            user = store.find_user(conn, int(claims.get("sub", "")))
        except (TokenError, ValueError) as exc:
            expired = isinstance(exc, TokenExpiredError)
            self.metrics.auth_failure("expired_token" if expired else "invalid_token")
            raise HttpError(401, "unauthorized", str(exc)) from exc
        if user is None:
            self.metrics.auth_failure("invalid_token")
            raise HttpError(401, "unauthorized", "account no longer exists")
        request.trace.user_id = user.id
        return user

    # -- handlers -------------------------------------------------------------

    def health(self, request: Request) -> Response:
        return json_response(200, {"status": "ok", "version": self.release.version})

    def metrics_text(self, request: Request) -> Response:
        return Response(200, self.metrics.render().encode(), CONTENT_TYPE)

    def test_db(self, request: Request) -> Response:
        response = self._check_database()
        if response.status != 200:
            problem = json.loads(response.body)
            kind = _DB_ERROR_KIND.get(problem["error"])
            if kind is not None:
                self.metrics.db_error(kind)
            self._log(
                logging.ERROR,
                "database check failed",
                request.trace,
                error=problem["error"],
                detail=problem["message"],
            )
        return response

    def _check_database(self) -> Response:
        expected = self.release.schema_version
        actual: int | None = None
        try:
            with self._connect() as conn:
                actual = schema_version(conn)
                if actual != expected:
                    word = "behind" if actual < expected else "ahead of"
                    message = f"schema version {actual} is {word} the code ({expected})"
                    return _db_failure("schema_mismatch", message, actual, expected)
                store.probe(conn)
        except DatabaseUnavailableError as exc:
            return _db_failure("database_unavailable", str(exc), None, expected)
        except sqlite3.Error as exc:
            return _db_failure("query_failed", str(exc), actual, expected)
        return json_response(
            200,
            {
                "status": "ok",
                "schema_version": actual,
                "expected_schema_version": expected,
            },
        )

    def register(self, request: Request) -> Response:
        body = self._body(request)
        email = store.check_email(body.get("email"))
        password = store.check_password(body.get("password"))
        with self._connect() as conn:
            hashed = hash_password(
                password, iterations=self.settings.password_iterations
            )
            user = store.create_user(conn, email, hashed)
        request.trace.user_id = user.id
        return json_response(201, user.public())

    def login(self, request: Request) -> Response:
        body = self._body(request)
        email, password = body.get("email"), body.get("password")
        if not isinstance(email, str) or not isinstance(password, str):
            raise HttpError(400, "invalid_input", "email and password are required")
        with self._connect() as conn:
            user = store.find_user_by_email(conn, email.strip().lower())
        stored = self._dummy_hash if user is None else user.password_hash
        if not verify_password(password, stored) or user is None:
            self.metrics.auth_failure("invalid_credentials")
            raise HttpError(401, "invalid_credentials", "wrong email or password")
        request.trace.user_id = user.id
        ttl = self.settings.token_ttl_seconds
        token = issue_token(user.id, self.settings.jwt_secret, ttl)
        return json_response(
            200, {"token": token, "token_type": "Bearer", "expires_in": ttl}
        )

    def profile(self, request: Request) -> Response:
        with self._connect() as conn:
            return json_response(200, self._user(request, conn).public())

    def wallet(self, request: Request) -> Response:
        with self._connect() as conn:
            return json_response(200, store.wallet(conn, self._user(request, conn)))

    def trade(self, request: Request) -> Response:
        with self._connect() as conn:
            user = self._user(request, conn)
            body = self._body(request)
            trade = store.place_trade(conn, user, body.get("symbol"), body.get("qty"))
        return json_response(201, trade)

    def admin_queue(self, request: Request) -> Response:
        with self._connect() as conn:
            if self._user(request, conn).role != "admin":
                raise HttpError(403, "forbidden", "admin role required")
            return json_response(200, {"pending": store.pending_trades(conn)})


# /test-db failures that count as db_errors_total (a schema mismatch does not:
# the database answers, the release does not match it)
_DB_ERROR_KIND = {"database_unavailable": "unavailable", "query_failed": "query"}


def _db_failure(code: str, message: str, actual: int | None, expected: int) -> Response:
    return json_response(
        503,
        {
            "status": "error",
            "error": code,
            "message": message,
            "schema_version": actual,
            "expected_schema_version": expected,
        },
    )


ROUTES: dict[str, dict[str, Handler]] = {
    "/health": {"GET": Api.health},
    "/metrics": {"GET": Api.metrics_text},
    "/test-db": {"GET": Api.test_db},
    "/register": {"POST": Api.register},
    "/login": {"POST": Api.login},
    "/profile": {"GET": Api.profile},
    "/wallet": {"GET": Api.wallet},
    "/trade": {"POST": Api.trade},
    "/admin/queue": {"GET": Api.admin_queue},
}
