"""The issue's targets, checked against one run's medians.

Each check needs rows of the same run; a check whose rows are missing or failed is
reported as ``n/a``. Marginal per-step figures difference two runs of the same tool
(1 host x N steps minus 1 host x M steps), which removes start-up and connecting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.report import summarize

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bench.model import ScenarioResult, Sizes


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    target: str
    measured: str
    ok: bool | None  # None: not measurable in this run


class _Medians:
    def __init__(self, results: Sequence[ScenarioResult]) -> None:
        self._rows = {(r.name, row.label): row for r in results for row in r.rows}

    def get(self, scenario: str, label: str, key: str = "median_s") -> float | None:
        row = self._rows.get((scenario, label))
        figures = None if row is None or row.error else summarize(row)
        return None if figures is None else figures[key]

    def get_prefixed(self, scenario: str, prefix: str) -> float | None:
        """Median of the first row whose label starts with ``prefix``."""
        for name, label in self._rows:
            if name == scenario and label.startswith(prefix):
                return self.get(scenario, label)
        return None


def check_targets(results: Sequence[ScenarioResult], sizes: Sizes) -> list[Check]:
    m = _Medians(results)
    widest = max(sizes.fanout)
    fanout = f"fanout-{widest[0]}"
    marginal_steps = sizes.ssh_steps - sizes.fanout_reference_steps
    return [
        _ratio(m, "local", "ansible", "runbook", ">=", 20, "local: ansible/runbook"),
        _ratio(m, "local", "pyinfra", "runbook", ">=", 1, "local: pyinfra/runbook"),
        _per_step_over_floor(m, sizes.local_steps),
        _ratio(
            m, "state-postgres", "runbook (postgres)", "runbook (jsonl)", "<=", 2,
            "state: PostgreSQL/JSONL per step",
        ),
        _ratio(m, "ssh-1", "ansible", "runbook", ">=", 10, "SSH: ansible/runbook"),
        _ssh_marginal(m, marginal_steps),
        _ratio(m, fanout, "ansible", "runbook", ">=", 10, f"{fanout}: ansible/runbook"),
        _cross(m, (fanout, "fanout-1"), 3, f"runbook {fanout} / 1 x {widest[1]}"),
        _ratio(
            m, "startup", "runbook --version", "floor: python + our 6 deps", "<=", 1.2,
            "runbook --version / import floor",
        ),
        _limit(m, "validate", "runbook validate", "median_s", 1.0, "validate s"),
        _limit(m, "bigout-local", "runbook", "rss_proc_mib", 100, "bigout local MiB"),
        _limit(m, "bigout-ssh", "runbook", "rss_proc_mib", 100, "bigout SSH MiB"),
        *_fleet_checks(results, m, sizes),
    ]  # fmt: skip


FLEET_ROWS = ("runbook, default forks", "runbook, forks = hosts")


def _fleet_checks(
    results: Sequence[ScenarioResult], m: _Medians, sizes: Sizes
) -> list[Check]:
    """fleet-N: no failed step in any repetition, each runbook row within 1.3x of
    the paramiko floor of the same run, and the engine's peak RSS under 150 MiB."""
    name = f"fleet-{sizes.fleet[0]}"
    rows = [row for r in results if r.name == name for row in r.rows]
    counted = [
        s.extra["failed_steps"]
        for row in rows
        for s in row.samples
        if "failed_steps" in s.extra
    ]
    failed = int(max(counted)) if counted else None
    checks = [
        Check(
            target=f"{name}: failed steps in any repetition = 0",
            measured="n/a" if failed is None else str(failed),
            ok=None if failed is None else failed == 0,
        )
    ]
    for label in FLEET_ROWS:
        floor = m.get_prefixed(name, "floor: paramiko exec")
        engine = m.get(name, label)
        value = engine / floor if engine is not None and floor else None
        checks.append(
            Check(
                target=f"{name}: {label} / paramiko floor <= 1.3",
                measured="n/a" if value is None else f"{value:.2f}x",
                ok=_verdict(value, "<=", 1.3),
            )
        )
        checks.append(
            _limit(m, name, label, "rss_proc_mib", 150, f"{name}: {label} MiB")
        )
    return checks


def _verdict(value: float | None, op: str, bound: float) -> bool | None:
    if value is None:
        return None
    return value >= bound if op == ">=" else value <= bound


def _ratio(
    m: _Medians, scenario: str, top: str, bottom: str, op: str, bound: float, name: str
) -> Check:
    a, b = m.get(scenario, top), m.get(scenario, bottom)
    value = a / b if a is not None and b else None
    shown = "n/a" if value is None else f"{value:.2f}x"
    return Check(
        target=f"{name} {op} {bound:g}", measured=shown, ok=_verdict(value, op, bound)
    )


def _per_step_over_floor(m: _Medians, steps: int) -> Check:
    engine, floor = m.get("local", "runbook"), m.get("local", "floor: spawn + fsync")
    value = (engine - floor) * 1000 / steps if engine and floor else None
    shown = "n/a" if value is None else f"{value:.2f} ms"
    target = "local: runbook per step above spawn + fsync floor <= 1 ms"
    return Check(target=target, measured=shown, ok=_verdict(value, "<=", 1.0))


def _ssh_marginal(m: _Medians, steps: int) -> Check:
    def marginal(label: str) -> float | None:
        long, short = m.get("ssh-1", label), m.get("fanout-1", label)
        if long is None or short is None or steps <= 0:
            return None
        return (long - short) * 1000 / steps

    engine, floor = marginal("runbook"), marginal("floor: paramiko exec")
    value = engine / floor if engine is not None and floor else None
    shown = (
        "n/a"
        if value is None
        else (f"{value:.2f}x ({engine:.2f} vs {floor:.2f} ms/step)")
    )
    target = "SSH: runbook marginal ms/step / paramiko floor's <= 1.5"
    return Check(target=target, measured=shown, ok=_verdict(value, "<=", 1.5))


def _cross(m: _Medians, scenarios: tuple[str, str], bound: float, name: str) -> Check:
    a, b = (m.get(s, "runbook") for s in scenarios)
    value = a / b if a is not None and b else None
    shown = "n/a" if value is None else f"{value:.2f}x"
    floors = [m.get_prefixed(s, "floor: paramiko exec") for s in scenarios]
    if value is not None and floors[0] and floors[1]:  # what the machine allows
        shown += f" (paramiko floor {floors[0] / floors[1]:.2f}x)"
    return Check(
        target=f"{name} <= {bound:g}", measured=shown, ok=_verdict(value, "<=", bound)
    )


def _limit(
    m: _Medians, scenario: str, label: str, key: str, bound: float, name: str
) -> Check:
    value = m.get(scenario, label, key)
    shown = "n/a" if value is None else f"{value:.3g}"
    return Check(
        target=f"{name} < {bound:g}", measured=shown, ok=_verdict(value, "<=", bound)
    )


def check_lines(checks: Sequence[Check]) -> list[str]:
    marks: dict[bool | None, str] = {True: "met", False: "MISSED", None: "n/a"}
    lines = ["| target | measured | |", "|---|--:|---|"]
    lines += [f"| {c.target} | {c.measured} | {marks[c.ok]} |" for c in checks]
    return lines
