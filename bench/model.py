"""The benchmark's vocabulary: commands, cases, scenarios, sizes, samples.

Owns only plain data. Running commands is ``measure``; building them is
``scenarios/`` and ``tools/``; printing is ``report``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """One process to time. ``env`` is added to the harness's environment."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    capture_stdout: bool = True  # False sends stdout to /dev/null (big output)
    parse_json: bool = False  # last stdout line is a JSON object of extra figures
    # figures read from what the command left in its run directory (e.g. runbook's
    # audit log), after it exited and outside the timing; called whatever its rc
    collect: Callable[[Path], Mapping[str, float]] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One tool doing one scenario's work.

    ``make`` receives a fresh empty directory per repetition (state dirs live there).
    ``warmup`` runs once, untimed, before the repetitions: ansible's ControlPersist
    masters, runbook's first run (which writes its ``.pyc`` files, as the installed
    peers already have theirs).
    ``unavailable`` is a reason not to run at all (a peer that is not installed).
    """

    tool: str  # filter key: runbook, ansible, ansible-raw, pyinfra, floor
    label: str  # what the table shows
    units: int  # work units (steps x hosts) for the ms/step column
    make: Callable[[Path], Command]
    warmup: Callable[[Path], Command] | None = None
    unavailable: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    name: str
    title: str
    hosts: int  # sshd instances it needs (0 = local only)
    cases: tuple[Case, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    """How much work each scenario does; ``--quick`` and ``--smoke`` shrink it."""

    local_steps: int = 200
    ssh_steps: int = 50
    fanout: tuple[tuple[int, int], ...] = ((20, 10), (50, 10))
    fanout_reference_steps: int = 10  # 1 host x this many: the fan-out target's base
    big_output_bytes: int = 300_000_000
    validate_files: int = 100
    validate_steps: int = 50
    # (hosts, steps, sshd): many inventory hosts spread over a few sshd, so a
    # fleet-sized fan-out fits on one machine
    fleet: tuple[int, int, int] = (500, 10, 5)

    @property
    def max_hosts(self) -> int:
        return max([1, *(hosts for hosts, _steps in self.fanout)])


FULL = Sizes()
QUICK = Sizes(
    local_steps=50,
    ssh_steps=20,
    fanout=((10, 5),),
    fanout_reference_steps=5,
    big_output_bytes=50_000_000,
    validate_files=20,
    fleet=(100, 5, 2),
)
SMOKE = Sizes(
    local_steps=3,
    ssh_steps=3,
    fanout=((2, 2),),
    fanout_reference_steps=2,
    big_output_bytes=1_000_000,
    validate_files=2,
    validate_steps=3,
    fleet=(4, 2, 2),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One timed repetition. RSS figures are MiB; ``error`` is set when rc != 0."""

    wall_s: float
    rss_tree_mib: float  # peak of the summed RSS of the process tree (polled)
    rss_proc_mib: float  # peak RSS of the largest single process (wait4, exact)
    rc: int
    error: str | None = None
    extra: Mapping[str, float] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class CaseResult:
    """The repetitions of one case; ``error`` stops further repetitions."""

    tool: str
    label: str
    units: int
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScenarioResult:
    name: str
    title: str
    rows: tuple[CaseResult, ...]
