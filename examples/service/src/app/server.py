"""Entry point: `python app/server.py` serves the API over HTTP until SIGTERM.

Adapts http.server (ThreadingHTTPServer) to `api.Api.handle`. Configuration comes
from the environment (see settings.py); a bad configuration exits with status 2
and one line on stderr, before the port is opened. Everything it writes to stderr
is a JSON log line (logs.py); http.server's own access log is replaced by the
request line api.py writes.
"""

from __future__ import annotations

import logging
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, cast

import logs
from api import MAX_BODY, Api, Request, Response, error_response
from auth import key_id
from release import load_release
from settings import ConfigError, load_settings

if TYPE_CHECKING:
    from types import FrameType

log = logging.getLogger("service")


class ServiceServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: Api) -> None:
        super().__init__(address, RequestHandler)
        self.api = api

    def handle_error(self, request: object, client_address: object) -> None:
        # socketserver calls this from its except clause: the error is current
        log.error("connection handler failed", exc_info=sys.exc_info())


class RequestHandler(BaseHTTPRequestHandler):
    server_version = "example-service"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def _read_body(self) -> bytes | Response:
        raw = self.headers.get("Content-Length") or "0"
        if not raw.isdigit():
            return error_response(400, "bad_request", "invalid Content-Length")
        if int(raw) > MAX_BODY:
            self.close_connection = True
            return error_response(413, "too_large", f"body over {MAX_BODY} bytes")
        return self.rfile.read(int(raw))

    def _serve(self) -> None:
        body = self._read_body()
        headers = {name.lower(): value for name, value in self.headers.items()}
        method = "GET" if self.command == "HEAD" else self.command
        api = cast("ServiceServer", self.server).api
        if isinstance(body, Response):
            self._send(api.reject(Request(method, self.path, headers), body))
            return
        self._send(api.handle(Request(method, self.path, headers, body)))

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        if response.content_type.startswith("application/json"):
            self.send_header("Cache-Control", "no-store")
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """api.py logs every request it answers (with its id), so nothing here."""

    def log_message(self, format: str, *args: object) -> None:
        # http.server's own errors (malformed request line, timeout): the format
        # only, since its arguments can quote the raw request, query string included
        code = args[0] if format.startswith("code %d") and args else None
        fields = {"detail": format.split("%")[0].strip(" ,:")}
        if code is not None:
            fields["status"] = str(code)
        log.warning("bad HTTP request", extra={"fields": fields})


class _StopRequestedError(Exception):
    pass


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _StopRequestedError


def main() -> int:
    logs.configure(sys.stderr)
    try:
        settings = load_settings()
    except ConfigError as exc:
        log.error(f"config error: {exc}")
        return 2
    release = load_release()
    try:
        server = ServiceServer((settings.host, settings.port), Api(settings, release))
    except OSError as exc:
        log.error(f"cannot listen on {settings.host}:{settings.port}: {exc}")
        return 1
    signal.signal(signal.SIGTERM, _on_sigterm)
    listening = {
        "version": release.version,
        "url": f"http://{settings.host}:{settings.port}",
        "env": settings.app_env,
        "schema_version": release.schema_version,
        # fingerprints of the signing keys (auth.key_id), never the keys
        "jwt_kid": key_id(settings.jwt_secret),
        "jwt_previous_kids": [key_id(k) for k in settings.jwt_previous_secrets],
    }
    log.info("listening", extra={"fields": listening})
    try:
        server.serve_forever()
    except (_StopRequestedError, KeyboardInterrupt):
        log.info("stopping on signal")
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
