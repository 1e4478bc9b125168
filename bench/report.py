"""Summaries, the Markdown table and the JSON file. Knows nothing about running.

Per row: median / min / max wall seconds over the repetitions, ms per work unit
(median / (steps x hosts)), the highest peak RSS seen (summed tree and largest
single process) and the row's median divided by runbook's median in that scenario.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from bench.model import CaseResult, Sample, ScenarioResult

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

HEADER = (
    "| scenario | tool | n | median s | min s | max s | ms/step "
    "| RSS MiB (tree) | RSS MiB (1 proc) | x runbook | notes |"
)
RULE = "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|"


def summarize(row: CaseResult) -> dict[str, float] | None:
    """Figures of a row, or None when it has no successful sample."""
    good = [s for s in row.samples if s.error is None]
    if not good:
        return None
    walls = [s.wall_s for s in good]
    median = statistics.median(walls)
    return {
        "median_s": median,
        "min_s": min(walls),
        "max_s": max(walls),
        "ms_per_step": 1000 * median / max(row.units, 1),
        "rss_tree_mib": max(s.rss_tree_mib for s in good),
        "rss_proc_mib": max(s.rss_proc_mib for s in good),
    }


def _runbook_median(result: ScenarioResult) -> float | None:
    for row in result.rows:
        figures = summarize(row)
        if row.tool == "runbook" and figures is not None:
            return figures["median_s"]
    return None


def _extras(row: CaseResult) -> str:
    good = [s.extra for s in row.samples if s.error is None and s.extra]
    if not good:
        return ""
    keys = sorted(good[0])
    medians = {k: statistics.median(e[k] for e in good if k in e) for k in keys}
    return ", ".join(f"{k}={v:.3g}" for k, v in medians.items())


def table_lines(results: Sequence[ScenarioResult]) -> list[str]:
    lines = [HEADER, RULE]
    for result in results:
        base = _runbook_median(result)
        for row in result.rows:
            lines.append(_row_line(result.name, row, base))
    return lines


def _row_line(scenario: str, row: CaseResult, base: float | None) -> str:
    figures = summarize(row)
    if figures is None or row.error is not None:
        note = f"error: {row.error}" if row.error else "error: no sample"
        return (
            f"| {scenario} | {row.label} | {len(row.samples)} |"
            + " - |" * 7
            + f" {note} |"
        )
    ratio = (
        "" if row.tool == "runbook" or not base else f"{figures['median_s'] / base:.2f}"
    )
    cells = [
        scenario,
        row.label,
        str(len(row.samples)),
        f"{figures['median_s']:.3f}",
        f"{figures['min_s']:.3f}",
        f"{figures['max_s']:.3f}",
        f"{figures['ms_per_step']:.2f}",
        f"{figures['rss_tree_mib']:.0f}",
        f"{figures['rss_proc_mib']:.0f}",
        ratio,
        _extras(row),
    ]
    return "| " + " | ".join(cells) + " |"


def to_json(
    results: Sequence[ScenarioResult], meta: Mapping[str, Any]
) -> dict[str, Any]:
    scenarios = []
    for result in results:
        base = _runbook_median(result)
        rows = []
        for row in result.rows:
            figures = summarize(row)
            ratio = None
            if figures is not None and base and row.tool != "runbook":
                ratio = figures["median_s"] / base
            rows.append(
                {
                    "tool": row.tool,
                    "label": row.label,
                    "units": row.units,
                    "error": row.error,
                    "summary": figures,
                    "ratio_to_runbook": ratio,
                    "samples": [asdict(s) for s in row.samples],
                }
            )
        scenarios.append({"name": result.name, "title": result.title, "rows": rows})
    return {"meta": dict(meta), "scenarios": scenarios}


def read_json(path: Path) -> tuple[list[ScenarioResult], dict[str, Any]]:
    """Results and meta of a JSON file written by ``write_json``."""
    document = json.loads(path.read_text())
    results = [
        ScenarioResult(
            name=scenario["name"],
            title=scenario["title"],
            rows=tuple(_read_row(row) for row in scenario["rows"]),
        )
        for scenario in document["scenarios"]
    ]
    return results, document["meta"]


def _read_row(row: dict[str, Any]) -> CaseResult:
    return CaseResult(
        tool=row["tool"],
        label=row["label"],
        units=row["units"],
        samples=[Sample(**sample) for sample in row["samples"]],
        error=row["error"],
    )


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
