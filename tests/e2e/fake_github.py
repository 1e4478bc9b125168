"""A local HTTP server that answers like GitHub's REST API for the two endpoints the
go/no-go CI gate reads, with bodies shaped as GitHub documents them:

    GET /repos/{owner}/{repo}/commits/{ref}/status       combined status
    GET /repos/{owner}/{repo}/commits/{ref}/check-runs   check runs, paginated

Each commit SHA is a scenario (its statuses and check runs, or a rate-limited
answer). Check runs come `page_size` a page with a `Link: <...>; rel="next"`
header, as GitHub paginates. Every request's path and headers are recorded."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = "octo-org/example-service"
TOKEN = "ghp_fakeTokenForTheLocalServer0123456789"


@dataclass
class Scenario:
    statuses: list[tuple[str, str]] = field(default_factory=list)  # (context, state)
    # (name, status, conclusion, head_sha or None for the scenario's own SHA)
    check_runs: list[tuple[str, str, str | None, str | None]] = field(
        default_factory=list
    )
    rate_limited: bool = False


@dataclass
class Seen:
    path: str
    headers: dict[str, str]  # names in lower case (HTTP does not care)


def _status(sha: str, context: str, state: str, number: int) -> dict[str, Any]:
    return {
        "url": f"https://api.github.com/repos/{REPO}/statuses/{sha}",
        "avatar_url": "https://github.com/images/error/hubot_happy.gif",
        "id": number,
        "node_id": f"MDY6U3RhdHVz{number}",
        "state": state,
        "description": f"{context}: {state}",
        "target_url": f"https://ci.example.com/{number}/output",
        "context": context,
        "created_at": "2026-12-01T10:00:00Z",
        "updated_at": "2026-12-01T10:05:00Z",
    }


def _check_run(
    sha: str, number: int, run: tuple[str, str, str | None, str | None]
) -> dict[str, Any]:
    name, status, conclusion, head_sha = run
    return {
        "id": 4000 + number,
        "head_sha": head_sha or sha,
        "node_id": f"MDg6Q2hlY2tSdW40{number}",
        "external_id": "",
        "url": f"https://api.github.com/repos/{REPO}/check-runs/{4000 + number}",
        "html_url": f"https://github.com/{REPO}/runs/{4000 + number}",
        "details_url": "https://example.com",
        "status": status,
        "conclusion": conclusion,
        "started_at": "2026-12-01T10:00:00Z",
        "completed_at": None if status != "completed" else "2026-12-01T10:04:00Z",
        "output": {
            "title": name,
            "summary": "",
            "text": "",
            "annotations_count": 0,
            "annotations_url": f"https://api.github.com/repos/{REPO}/check-runs/1/annotations",
        },
        "name": name,
        "check_suite": {"id": 5},
        "app": {"id": 1, "slug": "github-actions", "name": "GitHub Actions"},
        "pull_requests": [],
    }


class FakeGitHub:
    def __init__(self, page_size: int = 2) -> None:
        self.scenarios: dict[str, Scenario] = {}
        self.seen: list[Seen] = []
        self.page_size = page_size
        self.reset_at = int(time.time()) + 1800
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                fake.seen.append(Seen(self.path, headers))
                status, headers, body = fake.answer(self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def answer(self, raw: str) -> tuple[int, dict[str, str], Any]:
        url = urlsplit(raw)
        parts = url.path.strip("/").split("/")
        page = int(parse_qs(url.query).get("page", ["1"])[0])
        if len(parts) != 6 or parts[:1] != ["repos"] or "/".join(parts[1:3]) != REPO:
            return (
                404,
                {},
                {
                    "message": "Not Found",
                    "documentation_url": "https://docs.github.com/rest",
                },
            )
        sha, what = parts[4], parts[5]
        scenario = self.scenarios.get(sha)
        if scenario is None:
            return 422, {}, {"message": f"No commit found for SHA: {sha}"}
        if scenario.rate_limited:
            return (
                403,
                self._limit_headers(0),
                {
                    "message": "API rate limit exceeded for user ID 1.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                },
            )
        if what == "status":
            return 200, self._limit_headers(4999), self._combined(sha, scenario)
        runs = [_check_run(sha, n, run) for n, run in enumerate(scenario.check_runs)]
        chunk = runs[(page - 1) * self.page_size : page * self.page_size]
        headers = self._limit_headers(4998)
        if page * self.page_size < len(runs):
            base = f"{self.url}{url.path}?per_page=100"
            last = -(-len(runs) // self.page_size)
            headers["Link"] = (
                f'<{base}&page={page + 1}>; rel="next", <{base}&page={last}>; rel="last"'
            )
        return 200, headers, {"total_count": len(runs), "check_runs": chunk}

    def _combined(self, sha: str, scenario: Scenario) -> dict[str, Any]:
        states = [state for _, state in scenario.statuses]
        if not states or "pending" in states:
            combined = "pending"  # GitHub: pending when there are no statuses at all
        elif any(state in ("failure", "error") for state in states):
            combined = "failure"
        else:
            combined = "success"
        return {
            "state": combined,
            "statuses": [
                _status(sha, context, state, n)
                for n, (context, state) in enumerate(scenario.statuses, start=1)
            ],
            "sha": sha,
            "total_count": len(states),
            "repository": {
                "id": 1296269,
                "name": REPO.split("/")[1],
                "full_name": REPO,
            },
            "commit_url": f"https://api.github.com/repos/{REPO}/commits/{sha}",
            "url": f"https://api.github.com/repos/{REPO}/commits/{sha}/status",
        }

    def _limit_headers(self, remaining: int) -> dict[str, str]:
        return {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(self.reset_at),
            "x-ratelimit-used": str(5000 - remaining),
            "x-ratelimit-resource": "core",
        }


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()
        thread.join(timeout=5)
