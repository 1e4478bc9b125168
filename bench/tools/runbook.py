"""runbook under test: generated runbooks and inventories, ``run``/``validate`` lines.

The contract used: ``runbook run FILE --state-dir DIR -q [-i INVENTORY] [--forks N]``
(with ``RUNBOOK_STATE_URL`` for the database backend),
``runbook validate DIR`` and ``runbook --version``. Every run gets a fresh state dir,
so the per-step fsynced audit log is part of what is measured. Each case has one
untimed warm-up run, which writes runbook's ``.pyc`` files (an editable install has
none, while the pip-installed peers had theirs compiled at install time).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bench.model import Case, Command
from bench.tools import find_executable

if TYPE_CHECKING:
    from collections.abc import Callable

    from bench.fleet import Fleet, Host

REPO_ROOT = Path(__file__).resolve().parents[2]
GROUP = "fleet"


def base_argv() -> tuple[str, ...]:
    """The installed ``runbook`` script, else ``python -m runbook_engine``."""
    script = find_executable("runbook")
    return (script,) if script else (sys.executable, "-m", "runbook_engine")


def _env() -> dict[str, str]:
    # only matters for the ``-m`` fallback when the package is not installed
    return {"PYTHONPATH": str(REPO_ROOT)}


def write_runbook(path: Path, *, name: str, hosts: str, steps: int, run: str) -> Path:
    lines = ["version: 1", f"name: {name}", f"hosts: {hosts}", "steps:"]
    for index in range(1, steps + 1):
        lines += [f"  - id: s{index}", f"    run: {json.dumps(run)}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_inventory(path: Path, fleet: Fleet, hosts: tuple[Host, ...]) -> Path:
    """Hosts may share an address and port: each name is a host of its own to
    runbook (its own connection), as many names behind one load balancer would be."""
    lines = [
        "version: 1",
        "defaults:",
        "  user: root",
        f"  identity_file: {json.dumps(str(fleet.client_key))}",
        f"  known_hosts: {json.dumps(str(fleet.known_hosts))}",
        "hosts:",
        *(f"  {h.name}: {{address: {h.address}, port: {h.port}}}" for h in hosts),
        "groups:",
        f"  {GROUP}: [{', '.join(h.name for h in hosts)}]",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_case(
    runbook: Path,
    *,
    units: int,
    inventory: Path | None = None,
    forks: int | None = None,
    capture_stdout: bool = True,
    label: str = "runbook",
    count_steps: bool = False,
    database: Callable[[], str] | None = None,
) -> Case:
    """``runbook run``; ``count_steps`` adds ``steps`` and ``failed_steps`` (read from
    the run's audit log) to each sample's figures. ``database`` makes a fresh
    database per repetition and returns its URL: the run keeps its state there
    (RUNBOOK_STATE_URL) instead of in its state dir."""
    extra: tuple[str, ...] = ()
    if inventory is not None:
        extra += ("-i", str(inventory))
    if forks is not None:
        extra += ("--forks", str(forks))

    def make(run_dir: Path) -> Command:
        argv = (
            *base_argv(),
            "run",
            str(runbook),
            "--state-dir",
            str(run_dir / "state"),
        )
        env = _env()
        if database is not None:
            env["RUNBOOK_STATE_URL"] = database()
        return Command(
            argv=(*argv, "-q", *extra),
            env=env,
            capture_stdout=capture_stdout,
            collect=step_counts if count_steps else None,
        )

    return Case(tool="runbook", label=label, units=units, make=make, warmup=make)


def step_counts(run_dir: Path) -> dict[str, float]:
    """Steps finished and steps failed (failed or unknown) in the run's audit log."""
    finished = failed = 0
    try:
        text = (run_dir / "state" / "audit.jsonl").read_text()
    except OSError:
        return {}
    for line in text.splitlines():
        record = json.loads(line) if line.strip() else {}
        if record.get("event") == "step.finished":
            finished += 1
            failed += record.get("status") in ("failed", "unknown")
    return {"steps": finished, "failed_steps": failed}


def version_case() -> Case:
    command = Command(argv=(*base_argv(), "--version"), env=_env())
    return Case(
        tool="runbook",
        label="runbook --version",
        units=1,
        make=lambda _d: command,
        warmup=lambda _d: command,
    )


def validate_case(directory: Path, *, units: int) -> Case:
    command = Command(argv=(*base_argv(), "validate", str(directory)), env=_env())
    return Case(
        tool="runbook",
        label="runbook validate",
        units=units,
        make=lambda _d: command,
        warmup=lambda _d: command,
    )
