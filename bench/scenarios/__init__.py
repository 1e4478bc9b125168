"""Which scenarios exist, in what order, and how many sshd each needs.

``select_specs`` applies ``--only``; each spec's ``build`` writes the scenario's files
under the workspace and returns its cases (one per tool). Floors are rows inside the
scenario they bound, so each table shows tools and floor side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.scenarios import local, remote, scale

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from bench.model import Scenario, Sizes
    from bench.scenarios.workspace import Workspace


@dataclass(frozen=True, slots=True, kw_only=True)
class ScenarioSpec:
    name: str
    hosts: int
    build: Callable[[Workspace], Scenario]
    postgres: bool = False  # needs a PostgreSQL server


def all_specs(sizes: Sizes) -> list[ScenarioSpec]:
    specs = [
        ScenarioSpec(name="startup", hosts=0, build=local.build_startup),
        ScenarioSpec(name="local", hosts=0, build=local.build_local),
        ScenarioSpec(
            name="state-postgres",
            hosts=0,
            build=local.build_state_postgres,
            postgres=True,
        ),
        ScenarioSpec(name="ssh-1", hosts=1, build=remote.build_ssh_one),
        ScenarioSpec(name="fanout-1", hosts=1, build=remote.build_fanout_reference),
    ]
    for hosts, steps in sizes.fanout:
        specs.append(
            ScenarioSpec(
                name=f"fanout-{hosts}",
                hosts=hosts,
                build=remote.fanout_builder(hosts, steps),
            )
        )
    specs += [
        ScenarioSpec(name="bigout-local", hosts=0, build=local.build_big_output),
        ScenarioSpec(name="bigout-ssh", hosts=1, build=remote.build_big_output),
        ScenarioSpec(name="validate", hosts=0, build=local.build_validate),
    ]
    hosts, steps, sshd = sizes.fleet
    specs.append(
        ScenarioSpec(
            name=f"fleet-{hosts}",
            hosts=sshd,
            build=scale.fleet_builder(hosts, steps, sshd),
        )
    )
    return specs


def select_specs(
    specs: Sequence[ScenarioSpec], only: Sequence[str]
) -> list[ScenarioSpec]:
    """Keep specs named ``X`` or ``X-...`` for any X in ``only`` (all when empty):
    ``fanout`` selects every fan-out size, ``fanout-1`` only that one."""
    if not only:
        return list(specs)
    chosen = [
        s for s in specs if any(s.name == x or s.name.startswith(x + "-") for x in only)
    ]
    if not chosen:
        names = ", ".join(s.name for s in specs)
        raise ValueError(f"--only {','.join(only)} matches no scenario (have: {names})")
    return chosen
