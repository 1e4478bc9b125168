"""Scenarios over SSH against the fleet: one host, fan-out, big remote output.

Every tool gets the same hosts, key and known_hosts; forks/parallel = hosts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.floors import big_output_command
from bench.model import Scenario
from bench.tools import ansible, floor, pyinfra, runbook

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from bench.fleet import Fleet, Host
    from bench.model import Case
    from bench.scenarios.workspace import Workspace


def build_ssh_one(ws: Workspace) -> Scenario:
    steps = ws.sizes.ssh_steps
    cases = _ssh_cases(ws, "ssh-1", hosts=1, steps=steps)
    title = f"SSH, 1 host x {steps} steps of true"
    return Scenario(name="ssh-1", title=title, hosts=1, cases=cases)


def build_fanout_reference(ws: Workspace) -> Scenario:
    steps = ws.sizes.fanout_reference_steps
    cases = _ssh_cases(ws, "fanout-1", hosts=1, steps=steps)
    title = f"SSH, 1 host x {steps} steps (the fan-out reference)"
    return Scenario(name="fanout-1", title=title, hosts=1, cases=cases)


def fanout_builder(hosts: int, steps: int) -> Callable[[Workspace], Scenario]:
    def build(ws: Workspace) -> Scenario:
        name = f"fanout-{hosts}"
        cases = _ssh_cases(ws, name, hosts=hosts, steps=steps)
        title = f"SSH fan-out, {hosts} hosts x {steps} steps"
        return Scenario(name=name, title=title, hosts=hosts, cases=cases)

    return build


def _ssh_cases(ws: Workspace, name: str, *, hosts: int, steps: int) -> tuple[Case, ...]:
    fleet, where = ws.require_fleet(), ws.directory(name)
    chosen = fleet.first(hosts)
    units = hosts * steps
    book = runbook.write_runbook(
        where / "runbook.yaml",
        name=f"bench-{name}",
        hosts=runbook.GROUP,
        steps=steps,
        run="true",
    )
    inventory = runbook.write_inventory(where / "inventory.yaml", fleet, chosen)
    return (
        runbook.run_case(book, units=units, inventory=inventory, forks=hosts),
        *_ansible_cases(where, fleet, chosen, steps),
        pyinfra.deploy_case(
            pyinfra.write_deploy(where / "deploy.py", steps=steps),
            inventory=pyinfra.write_inventory(where / "inventory.py", fleet, chosen),
            units=units,
            parallel=hosts,
        ),
        floor.ssh_exec_case(fleet, chosen, steps),
    )


def _ansible_cases(
    where: Path, fleet: Fleet, hosts: tuple[Host, ...], steps: int
) -> tuple[Case, ...]:
    inventory = ansible.write_ssh_inventory(where / "inventory.ini", fleet, hosts)
    config = ansible.write_config(
        where, inventory=inventory, forks=len(hosts), known_hosts=fleet.known_hosts
    )
    warmup = ansible.write_playbook(
        where / "warmup.yml", hosts=ansible.GROUP, steps=1, module="raw"
    )
    units = steps * len(hosts)
    return tuple(
        ansible.playbook_case(
            ansible.write_playbook(
                where / f"playbook-{module}.yml",
                hosts=ansible.GROUP,
                steps=steps,
                module=module,
            ),
            config=config,
            units=units,
            tool=tool,
            warmup=warmup,
        )
        for module, tool in (("command", "ansible"), ("raw", "ansible-raw"))
    )


def build_big_output(ws: Workspace) -> Scenario:
    size, where = ws.sizes.big_output_bytes, ws.directory("bigout-ssh")
    fleet = ws.require_fleet()
    host = fleet.first(1)
    book = runbook.write_runbook(
        where / "runbook.yaml",
        name="bench-bigout-ssh",
        hosts=runbook.GROUP,
        steps=1,
        run=big_output_command(size),
    )
    inventory = runbook.write_inventory(where / "inventory.yaml", fleet, host)
    cases = (
        runbook.run_case(book, units=1, inventory=inventory, capture_stdout=False),
        floor.drain_ssh_case(fleet, host[0], size),
    )
    title = f"big output, SSH: one step printing {size / 1e6:g} MB"
    return Scenario(name="bigout-ssh", title=title, hosts=1, cases=cases)
