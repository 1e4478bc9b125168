"""Fleet scale: many inventory hosts (500 in the full run) spread over a few sshd.

One machine cannot run 500 sshd next to the controller, so the inventory lists
``hosts`` names round-robin over ``sshd`` servers (their ``MaxStartups`` and
``MaxSessions`` are raised by ``bench/fleet.py``). Each name is a host of its own to
every tool here: its own connection, its own steps. Rows: runbook with the default
forks, runbook with forks = hosts, and the raw paramiko floor (one thread per host,
the same addresses). The runbook rows also report ``failed_steps`` from their audit
log: at this fan-out the target is none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.fleet import Host
from bench.model import Scenario
from bench.tools import floor, runbook

if TYPE_CHECKING:
    from collections.abc import Callable

    from bench.scenarios.workspace import Workspace


def fleet_builder(hosts: int, steps: int, sshd: int) -> Callable[[Workspace], Scenario]:
    def build(ws: Workspace) -> Scenario:
        name = f"fleet-{hosts}"
        fleet, where = ws.require_fleet(), ws.directory(name)
        servers = fleet.first(sshd)
        names = tuple(
            Host(name=f"n{index + 1}", address=server.address, port=server.port)
            for index, server in (
                (index, servers[index % len(servers)]) for index in range(hosts)
            )
        )
        book = runbook.write_runbook(
            where / "runbook.yaml",
            name=f"bench-{name}",
            hosts=runbook.GROUP,
            steps=steps,
            run="true",
        )
        inventory = runbook.write_inventory(where / "inventory.yaml", fleet, names)
        units = hosts * steps
        cases = (
            runbook.run_case(
                book,
                units=units,
                inventory=inventory,
                label="runbook, default forks",
                count_steps=True,
            ),
            runbook.run_case(
                book,
                units=units,
                inventory=inventory,
                forks=hosts,
                label="runbook, forks = hosts",
                count_steps=True,
            ),
            floor.ssh_exec_case(fleet, names, steps),
        )
        title = f"fleet: {hosts} hosts on {sshd} sshd x {steps} steps of true"
        return Scenario(name=name, title=title, hosts=sshd, cases=cases)

    return build
