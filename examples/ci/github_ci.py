#!/usr/bin/env python3
"""Is CI green on GitHub for exactly this commit? For runbooks/go_no_go.yaml.

    GITHUB_TOKEN=... python3 examples/ci/github_ci.py --repo OWNER/REPO --sha SHA \\
        [--required NAME,NAME] [--api https://api.github.com]

Reads the commit's combined status (`GET /repos/{owner}/{repo}/commits/{ref}/status`:
`statuses[].context/state`) and its check runs (`GET .../commits/{ref}/check-runs`:
`check_runs[].name/status/conclusion/head_sha`), 100 a page, following the `Link:
<...>; rel="next"` header (only on the API's own host, so the token goes nowhere
else). With the headers GitHub documents: `Accept: application/vnd.github+json`,
`X-GitHub-Api-Version: 2022-11-28` and, when $GITHUB_TOKEN is set, `Authorization:
Bearer` (the token is never printed).

Green only when every required check concluded `success` for that SHA (a check run
of another head_sha does not count). Required: the names in --required (a status
context or a check run name), else every check reported, and then at least one.
Pending (queued, in progress), failed (failure, error, cancelled, timed_out,
action_required, neutral, stale...), skipped and missing checks are named. The
combined `state` alone is not used: GitHub reports `pending` when a commit has
check runs but no statuses. A rate-limited answer (403/429 with
`x-ratelimit-remaining: 0`, or `retry-after`) says when it resets.

Exit 0 green (last stdout line says so), 1 not green or not known (last stderr
line says why), 2 bad usage. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime

API_VERSION = "2022-11-28"
MAX_PAGES = 50
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_SHA = re.compile(r"^[0-9a-f]{7,40}$")


class NotGreenError(Exception):
    """CI is not green for the commit, or its state cannot be known."""


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    kind: str  # "status" | "check run"
    verdict: str  # success | pending | failed | skipped | other commit
    detail: str  # GitHub's word: the state, status or conclusion


def _get(url: str, token: str) -> tuple[object, str | None]:
    """(decoded JSON, next page URL) of one GET."""
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": "runbook-go-no-go",
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            body = json.loads(answer.read() or b"null")
            link = answer.headers.get("Link") or ""
    except urllib.error.HTTPError as exc:
        with exc:
            raise NotGreenError(_http_problem(exc)) from None
    except (OSError, ValueError) as exc:
        raise NotGreenError(f"cannot read {url.split('?')[0]}: {exc}") from None
    match = _NEXT.search(link)
    return body, match[1] if match else None


def _http_problem(exc: urllib.error.HTTPError) -> str:
    headers = exc.headers
    try:
        message = str(json.loads(exc.read()).get("message", ""))
    except (ValueError, AttributeError):
        message = ""
    if exc.code in (403, 429) and headers.get("x-ratelimit-remaining") == "0":
        reset = headers.get("x-ratelimit-reset", "")
        if reset.isdigit():
            when = datetime.fromtimestamp(int(reset), UTC)
            minutes = max(0, round((int(reset) - time.time()) / 60))
            stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
            return (
                f"GitHub API rate-limited (HTTP {exc.code}, x-ratelimit-remaining 0):"
                f" resets at {stamp} (in {minutes} min)"
            )
        return f"GitHub API rate-limited (HTTP {exc.code}, x-ratelimit-remaining 0)"
    if exc.code in (403, 429) and headers.get("retry-after"):
        return (
            f"GitHub API rate-limited (HTTP {exc.code}, secondary limit):"
            f" retry after {headers['retry-after']}s"
        )
    if exc.code == 401:
        return f"GitHub refused the token (HTTP 401 {message or 'Bad credentials'})"
    if exc.code == 404:
        return "repository or commit not found, or the token cannot read it (HTTP 404)"
    return f"GitHub answered HTTP {exc.code}: {message or exc.reason}"


def _pages(url: str, token: str, key: str, api_host: str) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    next_url: str | None = url
    for _ in range(MAX_PAGES):
        if next_url is None:
            return items
        if urllib.parse.urlsplit(next_url).netloc != api_host:
            raise NotGreenError(f"refusing a next page on another host: {next_url}")
        body, next_url = _get(next_url, token)
        if not isinstance(body, dict) or not isinstance(body.get(key), list):
            raise NotGreenError(f"unexpected answer from {url.split('?')[0]}: no {key}")
        items += [item for item in body[key] if isinstance(item, dict)]
    raise NotGreenError(f"more than {MAX_PAGES} pages of {key}")


def _same_commit(head_sha: object, sha: str) -> bool:
    return isinstance(head_sha, str) and (
        head_sha == sha if len(sha) == 40 else head_sha.startswith(sha)
    )


def checks_of(api: str, repo: str, sha: str, token: str) -> list[Check]:
    base = f"{api.rstrip('/')}/repos/{repo}/commits/{sha}"
    host = urllib.parse.urlsplit(api).netloc
    found = []
    for status in _pages(f"{base}/status?per_page=100", token, "statuses", host):
        state = str(status.get("state"))
        verdict = {"success": "success", "pending": "pending"}.get(state, "failed")
        found.append(Check(str(status.get("context")), "status", verdict, state))
    runs = _pages(f"{base}/check-runs?per_page=100", token, "check_runs", host)
    for run in runs:
        name, status = str(run.get("name")), str(run.get("status"))
        conclusion = str(run.get("conclusion"))
        if not _same_commit(run.get("head_sha"), sha):
            verdict, detail = "other commit", str(run.get("head_sha"))[:12]
        elif status != "completed":
            verdict, detail = "pending", status
        elif conclusion in ("success", "skipped"):
            verdict, detail = conclusion, conclusion
        else:
            verdict, detail = "failed", conclusion
        found.append(Check(name, "check run", verdict, detail))
    return found


def verdict(checks: list[Check], required: list[str], sha: str) -> str:
    """The green line, or NotGreenError naming every check that is not green."""
    wanted = required or sorted({check.name for check in checks})
    if not wanted:
        raise NotGreenError(f"no CI check reported for {sha[:12]}")
    problems: dict[str, list[str]] = {}
    for name in wanted:
        mine = [check for check in checks if check.name == name]
        if not mine:
            problems.setdefault("missing", []).append(name)
        for check in mine:
            if check.verdict != "success":
                word = f"{check.name} ({check.detail})"
                problems.setdefault(check.verdict, []).append(word)
    if problems:
        order = ("failed", "pending", "skipped", "missing", "other commit")
        said = "; ".join(
            f"{k}: {', '.join(problems[k])}" for k in order if k in problems
        )
        raise NotGreenError(f"CI not green for {sha[:12]}: {said}")
    return f"CI green for {sha[:12]}: {len(wanted)} required check(s) success"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="github_ci.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--repo", required=True, help="OWNER/REPO")
    parser.add_argument("--sha", required=True, help="the commit being released")
    parser.add_argument("--required", default="", help="comma-separated check names")
    parser.add_argument("--api", default="https://api.github.com")
    args = parser.parse_args(argv)
    if not _REPO.match(args.repo) or not _SHA.match(args.sha):
        parser.error("--repo must be OWNER/REPO and --sha 7-40 lower-case hex digits")
    required = [name.strip() for name in args.required.split(",") if name.strip()]
    try:
        checks = checks_of(
            args.api, args.repo, args.sha, os.environ.get("GITHUB_TOKEN", "")
        )
        for check in sorted(checks, key=lambda c: (c.name, c.kind)):
            print(f"  {check.verdict:<12} {check.name} ({check.kind}: {check.detail})")
        print(verdict(checks, required, args.sha))
    except NotGreenError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
