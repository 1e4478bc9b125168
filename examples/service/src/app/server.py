"""Entry point: `python app/server.py` serves the API over HTTP until SIGTERM.

Adapts http.server (ThreadingHTTPServer) to `api.Api.handle`. Configuration comes
from the environment (see settings.py); a bad configuration exits with status 2
and one line on stderr, before the port is opened.
"""

from __future__ import annotations

import logging
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, cast

from api import MAX_BODY, Api, Request, Response, error_response
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
        if isinstance(body, Response):
            self._send(body)
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        method = "GET" if self.command == "HEAD" else self.command
        api = cast("ServiceServer", self.server).api
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

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), format % args)


class _StopRequestedError(Exception):
    pass


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _StopRequestedError


def main() -> int:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    release = load_release()
    try:
        server = ServiceServer((settings.host, settings.port), Api(settings, release))
    except OSError as exc:
        print(
            f"cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr
        )
        return 1
    signal.signal(signal.SIGTERM, _on_sigterm)
    log.info(
        "example-service %s listening on http://%s:%d (env=%s, schema %d)",
        release.version,
        settings.host,
        settings.port,
        settings.app_env,
        release.schema_version,
    )
    try:
        server.serve_forever()
    except (_StopRequestedError, KeyboardInterrupt):
        log.info("stopping on signal")
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
