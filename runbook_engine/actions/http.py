"""``http:`` checks from the control machine: status, body text, JSON subset."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..record.events import Status
from ..record.results import parse_json
from ..spec.model import HttpAction
from .outcome import Outcome

if TYPE_CHECKING:
    from ..spec.model import Action
    from . import ActionEnv

_MAX_BODY = 64 * 1024


def run(action: Action, env: ActionEnv) -> Outcome:
    assert isinstance(action, HttpAction)
    url = env.renderer.text(action.url, "http.url")
    headers = {
        k: env.renderer.text_of(v, f"http.headers.{k}")
        for k, v in action.headers.items()
    }
    data: bytes | None = None
    if action.has_json:
        data = json.dumps(env.renderer.value(action.json, "http.json")).encode()
        headers.setdefault("Content-Type", "application/json")
    elif action.body is not None:
        data = env.renderer.text(action.body, "http.body").encode()
    display = f"{action.method} {url}"
    if not url.startswith(("http://", "https://")):
        return Outcome(
            status=Status.FAILED, message=f"not an http(s) URL: {url}", command=display
        )
    request = urllib.request.Request(
        url, data=data, headers=headers, method=action.method
    )
    timeout = min(action.timeout, env.timeout) if env.timeout else action.timeout
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body = response.status, response.read(_MAX_BODY)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(_MAX_BODY)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Outcome(
            status=Status.FAILED, message=f"{display}: {reason}", command=display
        )
    text = body.decode("utf-8", errors="replace")
    return _judge(action, env, status, text, display)


def _judge(
    action: HttpAction, env: ActionEnv, status: int, text: str, display: str
) -> Outcome:
    document = parse_json(text)
    problems = []
    if status not in action.expect_status:
        expected = " or ".join(str(s) for s in action.expect_status)
        problems.append(f"status {status}, expected {expected}")
    if action.expect_body_contains is not None:
        needle = env.renderer.text(action.expect_body_contains, "expect_body_contains")
        if needle not in text:
            problems.append(f"body does not contain {needle!r}")
    if action.has_expect_json:
        expected_json = env.renderer.value(action.expect_json, "expect_json")
        mismatch = subset_mismatch(expected_json, document)
        if mismatch:
            problems.append(f"JSON {mismatch}")
    return Outcome(
        status=Status.FAILED if problems else Status.OK,
        message="; ".join(problems) or None,
        http_status=status,
        stdout=text,
        json=document,
        command=display,
        rc=None,
    )


def subset_mismatch(expected: Any, actual: Any, path: str = "$") -> str | None:
    """None when ``expected`` is a subset of ``actual`` (dict keys recursively, list
    items position by position, scalars equal); otherwise where they differ."""
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return f"{path}: expected an object, got {json.dumps(actual)[:80]}"
        for key, value in expected.items():
            if key not in actual:
                return f"{path}.{key}: missing"
            problem = subset_mismatch(value, actual[key], f"{path}.{key}")
            if problem:
                return problem
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) < len(expected):
            return f"{path}: expected a list of at least {len(expected)} items"
        for i, value in enumerate(expected):
            problem = subset_mismatch(value, actual[i], f"{path}[{i}]")
            if problem:
                return problem
        return None
    if expected != actual:
        return f"{path}: expected {json.dumps(expected)}, got {json.dumps(actual)[:80]}"
    return None
