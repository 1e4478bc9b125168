"""The running service's structured log (ROOT/log/service.log): one JSON line per
request and per error, the request id in and out, and no credential in any line."""

from __future__ import annotations

import json
import secrets
import urllib.request
from typing import TYPE_CHECKING, Any

from tests.service.deployment import JWT_SECRET

if TYPE_CHECKING:
    from tests.service.deployment import Deployment

PASSWORD = "Known-Password-For-Log-Test-91"


def _log_lines(service: Deployment) -> list[dict[str, Any]]:
    text = (service.root / "log" / "service.log").read_text()
    return [json.loads(line) for line in text.splitlines()]


def _get(service: Deployment, path: str, **headers: str) -> tuple[int, Any]:
    request = urllib.request.Request(service.url(path), headers=headers)
    with urllib.request.urlopen(request, timeout=5) as answer:
        return answer.status, answer.headers


def test_a_request_id_sent_in_comes_back_and_is_logged(service: Deployment) -> None:
    rid = f"it-{secrets.token_hex(4)}"
    status, headers = _get(service, "/health", **{"X-Request-ID": rid})
    assert (status, headers["X-Request-ID"]) == (200, rid)
    [line] = [entry for entry in _log_lines(service) if entry.get("request_id") == rid]
    assert line["msg"] == "request" and line["route"] == "/health"
    assert (line["method"], line["status"], line["level"]) == ("GET", 200, "info")
    assert line["duration_ms"] >= 0 and line["ts"].endswith("Z")
    # an unsafe id is not echoed: the service makes its own
    _, replaced = _get(service, "/health", **{"X-Request-ID": "bad id;drop"})
    assert replaced["X-Request-ID"] != "bad id;drop"
    assert len(replaced["X-Request-ID"]) == 16


def test_every_line_is_json_with_a_level_and_a_time(service: Deployment) -> None:
    lines = _log_lines(service)  # json.loads fails on any other line
    assert lines[0]["msg"] == "servicectl start" and lines[1]["msg"] == "listening"
    assert lines[1]["version"] == "1.1.0"
    assert all({"ts", "level", "msg"} <= line.keys() for line in lines)


def test_credentials_never_reach_the_log(service: Deployment) -> None:
    email = f"log-{secrets.token_hex(3)}@example.test"
    token = service.login(email, PASSWORD)
    wrong = service.post("/login", {"email": email, "password": PASSWORD + "!"})
    forged = token.rsplit(".", 1)[0] + ".c2lnbmF0dXJl"
    assert service.get("/profile", forged)[0] == 401
    assert service.get("/profile", "garbage")[0] == 401
    assert wrong[0] == 401
    text = (service.root / "log" / "service.log").read_text()
    for needle in (PASSWORD, token, token.rsplit(".", 1)[1], forged, JWT_SECRET):
        assert needle not in text
    refused = [
        line for line in _log_lines(service)
        if line.get("route") == "/profile" and line.get("status") == 401
    ]  # fmt: skip
    assert len(refused) >= 2 and all(line["level"] == "warning" for line in refused)
    logged_in = [
        line for line in _log_lines(service)
        if line.get("route") == "/login" and line.get("status") == 200
    ]  # fmt: skip
    assert isinstance(logged_in[-1]["user_id"], int)
