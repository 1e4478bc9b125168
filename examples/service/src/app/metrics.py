"""The service's metrics, kept in memory and written in the Prometheus text format.

    http_requests_total{method, route, status}        counter
    http_request_duration_seconds{route}              histogram
    auth_failures_total{reason}                       counter
    db_errors_total{kind}                             counter
    app_build_info{version, schema_version}           gauge, always 1
    process_start_time_seconds                        gauge

Label values are bounded: `route` is a route of api.ROUTES, `static` or
`unmatched`, never a raw path. Every `reason` and `kind` starts at 0, so a rate
is defined from the first scrape. Thread-safe (one lock). Counters start again at 0
with the process, as Prometheus expects.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
AUTH_REASONS = (
    "invalid_credentials",
    "missing_token",
    "invalid_token",
    "expired_token",
)
DB_ERROR_KINDS = ("unavailable", "query")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    inner = ",".join(f'{name}="{_escape(value)}"' for name, value in labels.items())
    return "{" + inner + "}" if inner else ""


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


class _Histogram:
    def __init__(self) -> None:
        self.buckets = [0] * len(BUCKETS)
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.sum += seconds
        for index, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.buckets[index] += 1


class Metrics:
    def __init__(self, version: str, schema_version: int) -> None:
        self._lock = threading.Lock()
        self._info = {"version": version, "schema_version": str(schema_version)}
        self._started = time.time()
        self._requests: Counter[tuple[str, str, str]] = Counter()
        self._durations: dict[str, _Histogram] = {}
        self._auth = dict.fromkeys(AUTH_REASONS, 0)
        self._db = dict.fromkeys(DB_ERROR_KINDS, 0)

    def observe_request(
        self, method: str, route: str, status: int, seconds: float
    ) -> None:
        with self._lock:
            self._requests[(method, route, str(status))] += 1
            self._durations.setdefault(route, _Histogram()).observe(seconds)

    def auth_failure(self, reason: str) -> None:
        with self._lock:
            self._auth[reason] += 1

    def db_error(self, kind: str) -> None:
        with self._lock:
            self._db[kind] += 1

    def render(self) -> str:
        """The exposition text (format 0.0.4)."""
        with self._lock:
            lines = self._request_lines() + self._duration_lines()
            lines += _family(
                "auth_failures_total",
                "counter",
                "Refused logins and tokens, by reason.",
                [(_labels(reason=r), n) for r, n in self._auth.items()],
            )
            lines += _family(
                "db_errors_total",
                "counter",
                "Database failures: cannot open it (unavailable) or a query failed.",
                [(_labels(kind=k), n) for k, n in self._db.items()],
            )
        lines += _family(
            "app_build_info",
            "gauge",
            "The running release (always 1).",
            [(_labels(**self._info), 1)],
        )
        lines += _family(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
            [("", self._started)],
        )
        return "\n".join(lines) + "\n"

    def _request_lines(self) -> list[str]:
        samples = [
            (_labels(method=m, route=r, status=s), n)
            for (m, r, s), n in sorted(self._requests.items())
        ]
        return _family(
            "http_requests_total",
            "counter",
            "HTTP requests answered, by method, route and status.",
            samples,
        )

    def _duration_lines(self) -> list[str]:
        name = "http_request_duration_seconds"
        lines = [
            f"# HELP {name} Time to answer a request, by route.",
            f"# TYPE {name} histogram",
        ]
        for route, histogram in sorted(self._durations.items()):
            for bound, count in zip(BUCKETS, histogram.buckets, strict=True):
                lines.append(
                    f"{name}_bucket{_labels(route=route, le=str(bound))} {count}"
                )
            lines.append(
                f"{name}_bucket{_labels(route=route, le='+Inf')} {histogram.count}"
            )
            lines.append(f"{name}_sum{_labels(route=route)} {_number(histogram.sum)}")
            lines.append(f"{name}_count{_labels(route=route)} {histogram.count}")
        return lines


def _family(
    name: str, kind: str, help_text: str, samples: list[tuple[str, float]]
) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels} {_number(value)}" for labels, value in samples]
    return lines
