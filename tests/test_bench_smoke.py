"""The benchmark harness runs end to end, writes valid JSON and leaves nothing behind.

It runs ``python bench/run.py --smoke`` (tiny sizes, runbook and floors only, real
sshd). Nothing here looks at timings: the benchmark measures, the suite only proves
the harness works.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = {
    "startup", "local", "state-postgres", "ssh-1", "fanout-1", "fanout-2",
    "bigout-local", "bigout-ssh", "validate", "fleet-4",
}  # fmt: skip

pytestmark = [pytest.mark.e2e, pytest.mark.ssh]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("bench")
    scratch = base / "tmp"
    scratch.mkdir()
    results = base / "smoke.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "run.py"),
            "--smoke",
            "--json",
            str(results),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(scratch)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {
        "doc": json.loads(results.read_text()),
        "stdout": proc.stdout,
        "scratch": scratch,
    }


def _rows(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(s["name"], row) for s in doc["scenarios"] for row in s["rows"]]


def test_json_lists_every_scenario_with_runbook_and_a_floor(
    smoke: dict[str, Any],
) -> None:
    doc = smoke["doc"]
    assert {s["name"] for s in doc["scenarios"]} == SCENARIOS
    for scenario in doc["scenarios"]:
        tools = {row["tool"] for row in scenario["rows"]}
        assert "runbook" in tools, scenario["name"]
        assert tools <= {"runbook", "floor"}, "--smoke runs no peers"
    assert doc["meta"]["reps"] == 1
    assert doc["meta"]["machine"]["cpus"] >= 1


def test_floor_rows_have_one_sample_with_figures(smoke: dict[str, Any]) -> None:
    floors = [
        (name, row) for name, row in _rows(smoke["doc"]) if row["tool"] == "floor"
    ]
    assert floors
    for name, row in floors:
        assert row["error"] is None, f"{name}: {row['error']}"
        assert len(row["samples"]) == 1
        summary = row["summary"]
        assert summary["median_s"] > 0 and summary["rss_proc_mib"] > 0, name


def test_runbook_rows_ran_without_error(smoke: dict[str, Any]) -> None:
    errors = {
        name: row["error"]
        for name, row in _rows(smoke["doc"])
        if row["tool"] == "runbook" and row["error"] is not None
    }
    assert not errors


def test_fleet_rows_count_the_steps_of_every_host(smoke: dict[str, Any]) -> None:
    # --smoke: 4 inventory hosts on 2 sshd, 2 steps each
    rows = [row for name, row in _rows(smoke["doc"]) if name == "fleet-4"]
    labels = [row["label"] for row in rows]
    assert labels == [
        "runbook, default forks",
        "runbook, forks = hosts",
        "floor: paramiko exec, 4 threads",
    ]
    for row in rows[:2]:
        (sample,) = row["samples"]
        assert sample["extra"] == {"steps": 8, "failed_steps": 0}, row["label"]
    checks = {c["target"]: c for c in smoke["doc"]["targets"]}
    assert checks["fleet-4: failed steps in any repetition = 0"]["ok"] is True


def test_list_names_the_fleet_scenario_with_its_sshd_count() -> None:
    listed = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--list", "--only", "fleet"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=True,
    )
    assert listed.stdout.split("\n")[0] == "fleet-500 (sshd: 5)"


def test_table_has_a_line_per_row_then_the_targets(smoke: dict[str, Any]) -> None:
    lines = [line for line in smoke["stdout"].splitlines() if line.startswith("| ")]
    targets = smoke["doc"]["targets"]
    assert lines[0].startswith("| scenario | tool |")
    assert len(lines) == 1 + len(_rows(smoke["doc"])) + 1 + len(targets)
    assert all({"target", "measured", "ok"} <= set(check) for check in targets)


def test_leaves_no_process_or_temp_dir_behind(smoke: dict[str, Any]) -> None:
    scratch = str(smoke["scratch"])
    leftovers = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, NotADirectoryError):
            continue
        if scratch in cmdline:
            leftovers.append((entry.name, cmdline))
    assert not leftovers
    assert list(Path(scratch).iterdir()) == []
