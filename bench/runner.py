"""Run scenarios: warm-ups, then repetitions with the tools alternating.

In repetition ``r`` the case order is rotated by ``r`` so no tool always runs first
(or right after the heaviest peer). A case that fails once is not repeated; its
error is reported in the table instead. Each repetition gets a fresh directory,
removed afterwards.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bench.measure import run_measured
from bench.model import CaseResult, ScenarioResult

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from bench.model import Case, Command, Sample, Scenario


def run_scenario(
    scenario: Scenario, *, reps: int, tools: Collection[str], scratch: Path
) -> ScenarioResult:
    pairs = [
        (case, _start_result(case))
        for case in scenario.cases
        if not tools or case.tool in tools
    ]
    for case, result in pairs:
        if result.error is None and case.warmup is not None:
            _progress(f"{scenario.name}: warm-up for {case.label}")
            warm = _measure(case.warmup, scratch)
            result.error = None if warm.error is None else f"warm-up: {warm.error}"
    for rep in range(reps):
        shift = rep % len(pairs) if pairs else 0
        for case, result in pairs[shift:] + pairs[:shift]:
            if result.error is None:
                _repeat(scenario.name, f"{rep + 1}/{reps}", case, result, scratch)
    rows = tuple(result for _case, result in pairs)
    return ScenarioResult(name=scenario.name, title=scenario.title, rows=rows)


def _repeat(
    scenario: str, rep: str, case: Case, result: CaseResult, scratch: Path
) -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=scratch))
    try:
        sample = run_measured(case.make(run_dir), run_dir)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    result.samples.append(sample)
    result.error = sample.error
    outcome = f"error: {sample.error}" if sample.error else f"{sample.wall_s:.3f} s"
    _progress(f"{scenario} rep {rep} {case.label}: {outcome}")


def _measure(make: Callable[[Path], Command], scratch: Path) -> Sample:
    run_dir = Path(tempfile.mkdtemp(prefix="warm-", dir=scratch))
    try:
        return run_measured(make(run_dir), run_dir)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _start_result(case: Case) -> CaseResult:
    error = None if case.unavailable is None else f"skipped: {case.unavailable}"
    return CaseResult(tool=case.tool, label=case.label, units=case.units, error=error)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
