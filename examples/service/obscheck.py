#!/usr/bin/env python3
"""Observability checks of a running example service, for runbooks/observability.yaml.

    python obscheck.py series RULES                metric names the alerts use
    python obscheck.py covered RULES --url URL     /metrics exposes every one
    python obscheck.py auth-burst RULES --url URL [--count 20] [--alert NAME]

`auth-burst` scrapes /metrics, sends `count` logins with a wrong password for an
address that does not exist, scrapes again, and checks that auth_failures_total
rose by `count`. Then it asks the real promtool whether the alert would fire if
that rate went on: a `promtool test rules` file is written to a temp dir with the
rules file, one auth_failures_total series growing at the observed rate per second
for 30 minutes, and the expectation that the alert is firing after 20 (so its
`for:` and its threshold are the rule's own, not a copy). promtool must be on
PATH (Debian: apt-get install prometheus).

The last stdout line is the verdict; failures go to stderr with exit 1 (2: bad
usage). Standard library only: the rules file is read for its `expr:` values,
without a YAML library.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

AUTH_FAILURES = "auth_failures_total"
_EXPR_KEY = re.compile(r"^(\s*)(?:-\s+)?expr:\s*(.*)$")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![A-Za-z0-9_:.])[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without"}


class CheckError(Exception):
    """The service, or the rules, do not pass the check."""


def expressions(rules: str) -> list[str]:
    """Every `expr:` value of a rules file (plain or block scalar)."""
    found: list[str] = []
    lines = rules.splitlines()
    for index, line in enumerate(lines):
        match = _EXPR_KEY.match(line)
        if match is None:
            continue
        indent, value = len(match[1]), match[2].strip()
        if value and value[0] not in ">|":
            found.append(value.strip("'\""))
            continue
        block = []
        for following in lines[index + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            block.append(following.strip())
        found.append(" ".join(part for part in block if part))
    return found


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions or labels)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    text = re.sub(r"\{[^}]*\}", "{}", text)
    text = re.sub(r"\[[^\]]*\]", "[]", text)
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    names = set()
    for match in _IDENT.finditer(text):
        following = text[match.end() :].lstrip()
        if following.startswith("(") or match[0] in _KEYWORDS:
            continue
        names.add(match[0])
    return names


def rule_series(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CheckError(f"cannot read {path}: {exc.strerror}") from exc
    names: set[str] = set()
    for expression in expressions(text):
        names |= metric_names(expression)
    if not names:
        raise CheckError(f"no alert expression in {path}")
    return sorted(names)


def scrape(url: str) -> dict[str, float]:
    """Sample name -> the sum of its values over every label set."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except (OSError, ValueError) as exc:
        raise CheckError(f"cannot scrape {url}/metrics: {exc}") from exc
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = re.split(r"[{\s]", line, maxsplit=1)[0]
        totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


def failed_login(url: str, email: str) -> int:
    body = json.dumps({"email": email, "password": secrets.token_urlsafe(12)}).encode()
    request = urllib.request.Request(
        url.rstrip("/") + "/login", body, {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)
    except OSError as exc:
        raise CheckError(f"cannot reach {url}/login: {exc}") from exc


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        raise CheckError(
            "promtool not found on PATH (Debian: apt-get install prometheus)"
        )
    return found


def would_fire(rules: Path, alert: str, per_second: float) -> bool:
    """Would `alert` fire on auth_failures_total growing `per_second`? (promtool)"""
    promtool = _promtool()
    with tempfile.TemporaryDirectory(prefix="obscheck-") as work:
        shutil.copy(rules, Path(work, "rules.yml"))
        series = f'{AUTH_FAILURES}{{job="example-service",instance="observed"}}'
        test = {
            "rule_files": ["rules.yml"],
            "evaluation_interval": "1m",
            "tests": [
                {
                    "interval": "1m",
                    "input_series": [
                        {"series": series, "values": f"0+{per_second * 60:.6f}x30"}
                    ],
                    "promql_expr_test": [
                        {
                            "expr": f'count(ALERTS{{alertname="{alert}",'
                            'alertstate="firing"})',
                            "eval_time": "20m",
                            "exp_samples": [{"labels": "{}", "value": 1}],
                        }
                    ],
                }
            ],
        }
        # JSON is YAML, so promtool reads the test file as it is
        Path(work, "test.yml").write_text(json.dumps(test, indent=2))
        done = subprocess.run(
            [promtool, "test", "rules", "test.yml"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    if done.returncode != 0 and "got: nil" not in done.stdout + done.stderr:
        raise CheckError(
            f"promtool test rules failed: {(done.stdout + done.stderr)[-300:]}"
        )
    return done.returncode == 0


def cmd_series(args: argparse.Namespace) -> str:
    return "\n".join(rule_series(args.rules))


def cmd_covered(args: argparse.Namespace) -> str:
    wanted = rule_series(args.rules)
    exposed = scrape(args.url)
    missing = [name for name in wanted if name not in exposed]
    if missing:
        raise CheckError(f"/metrics lacks series the alerts use: {', '.join(missing)}")
    return (
        f"/metrics exposes the {len(wanted)} series the alerts use: {', '.join(wanted)}"
    )


def cmd_auth_burst(args: argparse.Namespace) -> str:
    email = f"obscheck-{secrets.token_hex(4)}@nowhere.invalid"
    before, started = scrape(args.url).get(AUTH_FAILURES, 0.0), time.monotonic()
    statuses = {failed_login(args.url, email) for _ in range(args.count)}
    after, seconds = (
        scrape(args.url).get(AUTH_FAILURES, 0.0),
        time.monotonic() - started,
    )
    if statuses != {401}:
        raise CheckError(f"wrong-password logins answered {sorted(statuses)}, not 401")
    rose = after - before
    if rose < args.count:
        raise CheckError(
            f"{args.count} failed logins raised {AUTH_FAILURES} by {rose:g}"
        )
    rate = rose / max(seconds, 0.001)
    print(f"{args.count} failed logins in {seconds:.2f}s: {AUTH_FAILURES} +{rose:g}")
    if not would_fire(args.rules, args.alert, rate):
        raise CheckError(f"{args.alert} would not fire at the burst's {rate:.2f}/s")
    return f"{args.alert} would fire if {rate:.2f} failures/s went on (promtool)"


COMMANDS = {"series": cmd_series, "covered": cmd_covered, "auth-burst": cmd_auth_burst}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="obscheck.py", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        sub = commands.add_parser(name)
        sub.add_argument("rules", type=Path, help="alerting rules file")
        if name != "series":
            sub.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8080")
        if name == "auth-burst":
            sub.add_argument("--count", type=int, default=20)
            sub.add_argument("--alert", default="AuthFailureSpike", help="alert name")
    args = parser.parse_args(argv)
    try:
        print(COMMANDS[args.command](args))
    except CheckError as exc:
        print(f"obscheck {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
