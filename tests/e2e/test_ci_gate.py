"""The CI gate of go_no_go.yaml (examples/ci/github_ci.py) against a local server
that answers like GitHub's REST API: green only when every required check of the
exact commit concluded success, every other case a no-go that names the checks,
pagination followed, the documented headers sent, a rate limit reported with its
reset time, and the token never printed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from tests.conftest import ROOT
from tests.e2e.fake_github import REPO, TOKEN, Scenario

if TYPE_CHECKING:
    from tests.e2e.fake_github import FakeGitHub

pytestmark = pytest.mark.e2e

GITHUB_CI = ROOT / "examples" / "ci" / "github_ci.py"
SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
OTHER = "0" * 40
GREEN_RUNS = [
    (name, "completed", "success", None)
    for name in ("lint", "test", "e2e", "build", "docs")
]


def ci(
    github: FakeGitHub, sha: str = SHA, *extra: str, token: str = TOKEN
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_TOKEN"}
    if token:
        env["GITHUB_TOKEN"] = token
    return subprocess.run(
        [sys.executable, str(GITHUB_CI), "--repo", REPO, "--sha", sha, "--api", github.url, *extra],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    return (done.stderr.strip() or done.stdout.strip()).splitlines()[-1]


def test_green_needs_every_check_run_on_every_page(github: FakeGitHub) -> None:
    github.scenarios[SHA] = Scenario(
        statuses=[
            ("continuous-integration/jenkins", "success"),
            ("security/brakeman", "success"),
        ],
        check_runs=GREEN_RUNS,
    )
    done = ci(github)
    assert done.returncode == 0, done.stdout + done.stderr
    assert last_line(done) == "CI green for 6dcb09b5b578: 7 required check(s) success"
    paths = [seen.path for seen in github.seen]
    base = f"/repos/{REPO}/commits/{SHA}"
    assert paths == [
        f"{base}/status?per_page=100",
        f"{base}/check-runs?per_page=100",
        f"{base}/check-runs?per_page=100&page=2",
        f"{base}/check-runs?per_page=100&page=3",
    ]
    for seen in github.seen:
        assert seen.headers["accept"] == "application/vnd.github+json"
        assert seen.headers["x-github-api-version"] == "2022-11-28"
        assert seen.headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in done.stdout + done.stderr


def test_every_check_that_is_not_green_is_named(github: FakeGitHub) -> None:
    github.scenarios[SHA] = Scenario(
        statuses=[("ci/legacy", "pending"), ("security/scan", "error")],
        check_runs=[
            ("lint", "completed", "success", None),
            ("test", "completed", "failure", None),
            ("e2e", "in_progress", None, None),
            ("browser", "completed", "skipped", None),
            ("deploy-check", "completed", "success", OTHER),
        ],
    )
    required = "lint,test,e2e,browser,deploy-check,ci/legacy,security/scan,docs"
    done = ci(github, SHA, "--required", required)
    assert done.returncode == 1
    assert last_line(done) == (
        "CI not green for 6dcb09b5b578: failed: test (failure), security/scan (error);"
        " pending: e2e (in_progress), ci/legacy (pending); skipped: browser (skipped);"
        " missing: docs; other commit: deploy-check (000000000000)"
    )
    # a failure outside the required checks does not block
    lint_only = ci(github, SHA, "--required", "lint")
    assert lint_only.returncode == 0
    assert (
        last_line(lint_only) == "CI green for 6dcb09b5b578: 1 required check(s) success"
    )


def test_check_runs_without_statuses_are_green(github: FakeGitHub) -> None:
    """GitHub's combined state is `pending` when a commit has no statuses at all, as
    with GitHub Actions alone: the gate must not read that as pending."""
    github.scenarios[SHA] = Scenario(check_runs=GREEN_RUNS[:1])
    done = ci(github, token="")
    assert done.returncode == 0, done.stderr
    assert "authorization" not in github.seen[0].headers
    github.scenarios[OTHER] = Scenario()
    nothing = ci(github, OTHER)
    assert nothing.returncode == 1
    assert last_line(nothing) == "no CI check reported for 000000000000"


def test_a_rate_limited_answer_says_when_it_resets(github: FakeGitHub) -> None:
    github.scenarios[SHA] = Scenario(rate_limited=True)
    done = ci(github)
    assert done.returncode == 1
    stamp = datetime.fromtimestamp(github.reset_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    minutes = round((github.reset_at - time.time()) / 60)
    assert last_line(done) == (
        "GitHub API rate-limited (HTTP 403, x-ratelimit-remaining 0):"
        f" resets at {stamp} (in {minutes} min)"
    )


def test_bad_input_and_unknown_commits_are_clear(github: FakeGitHub) -> None:
    unknown = ci(github, "1" * 40)
    assert unknown.returncode == 1 and "GitHub answered HTTP 422" in last_line(unknown)
    bad = ci(github, "not-a-sha")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    down = subprocess.run(
        [sys.executable, str(GITHUB_CI), "--repo", REPO, "--sha", SHA, "--api", "http://127.0.0.1:9"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (
        down.returncode == 1 and "cannot read http://127.0.0.1:9/repos/" in down.stderr
    )
