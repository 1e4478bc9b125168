"""GET /metrics of the running service, read with Prometheus' own parser
(prometheus_client.parser), and the exposition module on its own."""

from __future__ import annotations

import importlib.util
import secrets
from typing import TYPE_CHECKING

from prometheus_client.parser import text_string_to_metric_families

from tests.service.deployment import SERVICE_DIR, scrape, value

if TYPE_CHECKING:
    from types import ModuleType

    from tests.service.deployment import Deployment


def test_metrics_are_valid_exposition_with_every_family(service: Deployment) -> None:
    families, samples = scrape(service)
    kinds = {name: family.type for name, family in families.items()}
    assert kinds == {
        "http_requests": "counter",
        "http_request_duration_seconds": "histogram",
        "auth_failures": "counter",
        "db_errors": "counter",
        "app_build_info": "gauge",
        "process_start_time_seconds": "gauge",
    }
    assert value(samples, "app_build_info", version="1.1.0", schema_version="2") == 1
    for reason in (
        "invalid_credentials",
        "missing_token",
        "invalid_token",
        "expired_token",
    ):
        assert ("auth_failures_total", frozenset({("reason", reason)})) in samples
    for kind in ("unavailable", "query"):
        assert ("db_errors_total", frozenset({("kind", kind)})) in samples


def test_requests_and_durations_are_counted_by_route(service: Deployment) -> None:
    _, before = scrape(service)
    for _ in range(3):
        assert service.get("/health")[0] == 200
    assert service.get("/no-such-page")[0] == 404
    _, after = scrape(service)
    health = {"method": "GET", "route": "/health", "status": "200"}
    counted = value(after, "http_requests_total", **health) - value(
        before, "http_requests_total", **health
    )
    assert counted == 3
    static = {"method": "GET", "route": "static", "status": "404"}
    assert (
        value(after, "http_requests_total", **static)
        == value(before, "http_requests_total", **static) + 1
    )
    name = "http_request_duration_seconds"
    count = value(after, f"{name}_count", route="/health")
    assert count - value(before, f"{name}_count", route="/health") == 3
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (sample, labels), v in after.items()
        if sample == f"{name}_bucket" and ("route", "/health") in labels
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert buckets[-1] == (float("inf"), count)
    assert 0 < value(after, f"{name}_sum", route="/health") < count * 5


def test_auth_failures_are_counted_by_reason(service: Deployment) -> None:
    _, before = scrape(service)
    email = f"metrics-{secrets.token_hex(3)}@example.test"
    token = service.login(email, "Metrics-Password-1")
    for _ in range(2):
        assert (
            service.post("/login", {"email": email, "password": "wrong-one"})[0] == 401
        )
    assert service.get("/profile", token[:-3] + "xyz")[0] == 401
    assert service.get("/profile")[0] == 401
    _, after = scrape(service)

    def moved(reason: str) -> float:
        return value(after, "auth_failures_total", reason=reason) - value(
            before, "auth_failures_total", reason=reason
        )

    assert [
        moved(r) for r in ("invalid_credentials", "invalid_token", "missing_token")
    ] == [
        2,
        1,
        1,
    ]
    assert moved("expired_token") == 0


def test_a_missing_database_counts_db_errors(service: Deployment) -> None:
    token = service.login(
        f"db-{secrets.token_hex(3)}@example.test", "Metrics-Password-2"
    )
    _, before = scrape(service)
    aside = service.db_path.with_name("app.db.aside")
    service.db_path.rename(aside)
    try:
        assert service.get("/test-db")[1]["error"] == "database_unavailable"
        assert service.get("/wallet", token)[0] == 503
    finally:
        aside.rename(service.db_path)
    _, after = scrape(service)
    assert (
        value(after, "db_errors_total", kind="unavailable")
        - value(before, "db_errors_total", kind="unavailable")
        == 2
    )
    assert service.get("/test-db")[0] == 200


def _metrics_module() -> ModuleType:
    path = SERVICE_DIR / "src" / "app" / "metrics.py"
    spec = importlib.util.spec_from_file_location("service_metrics", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_exposition_escapes_labels_and_fills_buckets() -> None:
    metrics = _metrics_module().Metrics('9.9.9-"rc"\\1', 7)
    metrics.observe_request("GET", "/health", 200, 0.003)
    metrics.observe_request("GET", "/health", 200, 0.3)
    metrics.observe_request("GET", "/health", 200, 30.0)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render())}
    [info] = families["app_build_info"].samples
    assert info.labels == {"version": '9.9.9-"rc"\\1', "schema_version": "7"}
    buckets = {
        s.labels["le"]: s.value
        for s in families["http_request_duration_seconds"].samples
        if s.name.endswith("_bucket")
    }
    assert (buckets["0.005"], buckets["0.25"], buckets["0.5"], buckets["10.0"]) == (
        1,
        1,
        2,
        2,
    )
    assert buckets["+Inf"] == 3
