"""runbooks/observability.yaml against a deployed example service: request ids, the
series the alerts use, promtool on the rules and on a burst of failed logins, and a
real database fault that is undone; a stray fault file is refused, production skips
the fault."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.service_targets import RUNBOOKS, release, statuses
from tests.service.deployment import scrape, value

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.conftest import Result
    from tests.e2e.service_targets import Target

pytestmark = pytest.mark.e2e


def test_observability_checks_a_deployed_service(
    rb: Callable[..., Result], target: Target
) -> None:
    assert release(rb, target, "1.1.0").code == 0
    observe = ["run", str(RUNBOOKS / "observability.yaml"), *target.place]
    done = rb(*observe, "--output", "json")
    assert done.code == 0, done.output
    assert statuses(done) == {
        "serving": "ok",
        "request_id": "ok",
        "metrics_series": "ok",
        "rules_valid": "ok",
        "auth_alert": "ok",
        "db_fault": "changed",
        "db_back": "ok",
        "db_restored": "ok",
    }
    run_id = done.json()["run_id"]
    assert f"obs-{run_id} echoed and logged: GET /health 200" in done.stderr
    assert "/metrics exposes the 3 series the alerts use" in done.stderr
    assert "SUCCESS: 3 rules found" in done.stderr
    assert "20 failed logins in" in done.stderr
    assert "AuthFailureSpike would fire if" in done.stderr
    assert "/test-db 503 database_unavailable" in done.stderr
    # what the service itself says afterwards
    _, samples = scrape(target)
    assert value(samples, "auth_failures_total", reason="invalid_credentials") == 20
    assert value(samples, "db_errors_total", kind="unavailable") == 1
    assert target.get("/test-db")[0] == 200
    log = (target.root / "log" / "service.log").read_text()
    assert f'"request_id":"obs-{run_id}"' in log

    # a fault file left by someone: production skips the fault, development refuses it
    aside = target.root / "app.db.fault-aside"
    aside.write_text("not ours")
    production = rb(*observe, "-e", "env=production", "--output", "json")
    assert production.code == 0, production.output
    assert statuses(production)["db_fault"] == "skipped"
    refused = rb(*observe, "--output", "json")
    assert refused.code == 1, refused.output
    assert "an earlier fault was not undone" in refused.stderr
    assert refused.json()["status"] == "rolled_back"
    assert aside.read_text() == "not ours"
    assert target.get("/test-db")[0] == 200
