"""examples/service/alerts.yml with the real promtool: the rules are valid, their
unit tests (alerts.test.yml) pass, every alert waits, has a severity and names a
runbook, and the series they use are what the running service exposes.

promtool comes with Debian's `prometheus` package; without it these tests fail."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from tests.service.deployment import SERVICE_DIR, scrape

if TYPE_CHECKING:
    from types import ModuleType

    from tests.service.deployment import Deployment

RULES = SERVICE_DIR / "alerts.yml"
REPO_ROOT = SERVICE_DIR.parents[1]
OBSCHECK = SERVICE_DIR / "obscheck.py"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: apt-get install prometheus")
    return found


def _run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, input=stdin, timeout=60, check=False,
        cwd=SERVICE_DIR,
    )  # fmt: skip


def _alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_checks_the_rules_and_runs_their_unit_tests(promtool: str) -> None:
    checked = _run(promtool, "check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 3 rules found" in checked.stdout
    tested = _run(promtool, "test", "rules", "alerts.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_the_unit_tests_fail_when_a_threshold_moves(
    promtool: str, tmp_path: Path
) -> None:
    """The promtool tests can fail: raise the auth threshold tenfold and they do."""
    rules = RULES.read_text().replace(
        "auth_failures_total[5m])) > 0.5", "auth_failures_total[5m])) > 5"
    )
    assert rules != RULES.read_text()
    (tmp_path / "alerts.yml").write_text(rules)
    shutil.copy(SERVICE_DIR / "alerts.test.yml", tmp_path)
    tested = subprocess.run(
        [promtool, "test", "rules", "alerts.test.yml"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert tested.returncode == 1
    assert "alertname: AuthFailureSpike, time: 15m" in tested.stdout + tested.stderr


def test_every_alert_waits_has_a_severity_and_names_a_runbook() -> None:
    alerts = _alerts()
    assert [a["alert"] for a in alerts] == [
        "AuthFailureSpike",
        "HighErrorRate",
        "DatabaseUnavailable",
    ]
    for alert in alerts:
        assert alert["for"] in ("2m", "5m"), alert["alert"]
        assert alert["labels"]["severity"] in ("warning", "critical")
        annotations = alert["annotations"]
        runbook, page = annotations["runbook"], annotations["runbook_url"]
        assert runbook.startswith("runbooks/") and (REPO_ROOT / runbook).is_file()
        assert page.startswith("docs/runbooks/") and (REPO_ROOT / page).is_file()
        assert Path(runbook).stem == Path(page).stem


def test_the_series_the_alerts_use_are_exposed(
    promtool: str, service: Deployment
) -> None:
    listed = _run(sys.executable, str(OBSCHECK), "series", str(RULES))
    used = set(listed.stdout.split())
    assert used == {"auth_failures_total", "http_requests_total", "db_errors_total"}
    _, samples = scrape(service)
    assert used <= {name for name, _ in samples}
    with urllib.request.urlopen(service.url("/metrics"), timeout=5) as answer:
        text = answer.read().decode()
    linted = _run(promtool, "check", "metrics", stdin=text)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def _obscheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("obscheck", OBSCHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_would_fire_follows_the_rule_threshold(promtool: str) -> None:
    obscheck = _obscheck()
    assert obscheck.would_fire(RULES, "AuthFailureSpike", 2.0) is True
    assert obscheck.would_fire(RULES, "AuthFailureSpike", 0.1) is False


def test_metric_names_skip_functions_labels_and_grouping() -> None:
    names = _obscheck().metric_names(
        'sum by (job, instance) (rate(a_total{status=~"5..", x="y(z)"}[5m]))'
        " / on (job) group_left (b) ignoring (c) rate(b_total[1m]) > 0 and up offset 5m"
    )
    assert names == {"a_total", "b_total", "up"}
