"""Scenarios on the control machine only: start-up, local steps, the two state
backends side by side, big local output, validation of many runbooks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.floors import big_output_command
from bench.model import Scenario
from bench.tools import ansible, floor, pyinfra, runbook

if TYPE_CHECKING:
    from pathlib import Path

    from bench.scenarios.workspace import Workspace


def build_startup(ws: Workspace) -> Scenario:
    cases = (
        runbook.version_case(),
        floor.python_case(),
        floor.imports_case(),
        ansible.version_case(),
        pyinfra.version_case(),
    )
    return Scenario(
        name="startup",
        title="start-up: --version vs import floor",
        hosts=0,
        cases=cases,
    )


def build_local(ws: Workspace) -> Scenario:
    steps, where = ws.sizes.local_steps, ws.directory("local")
    book = runbook.write_runbook(
        where / "runbook.yaml",
        name="bench-local",
        hosts="local",
        steps=steps,
        run="true",
    )
    inventory = ansible.write_local_inventory(where / "inventory.ini")
    config = ansible.write_config(where, inventory=inventory, forks=1, known_hosts=None)
    cases = (
        runbook.run_case(book, units=steps),
        ansible.playbook_case(
            _local_playbook(ws, steps, "command"), config=config, units=steps
        ),
        ansible.playbook_case(
            _local_playbook(ws, steps, "raw"),
            config=config,
            units=steps,
            tool="ansible-raw",
        ),
        pyinfra.deploy_case(
            pyinfra.write_deploy(where / "deploy.py", steps=steps),
            inventory=None,
            units=steps,
        ),
        floor.spawn_fsync_case(steps),
    )
    return Scenario(
        name="local", title=f"local, {steps} steps of true", hosts=0, cases=cases
    )


def build_state_postgres(ws: Workspace) -> Scenario:
    """The local steps with each state backend: the JSONL files (the default) and
    PostgreSQL (a fresh database per repetition, on a server with fsync on)."""
    steps, where = ws.sizes.local_steps, ws.directory("state-postgres")
    server = ws.require_postgres()
    book = runbook.write_runbook(
        where / "runbook.yaml",
        name="bench-state",
        hosts="local",
        steps=steps,
        run="true",
    )
    cases = (
        runbook.run_case(book, units=steps, label="runbook (jsonl)"),
        runbook.run_case(
            book,
            units=steps,
            label="runbook (postgres)",
            database=lambda: server.create_database("bench"),
        ),
    )
    title = f"state backends: local, {steps} steps of true, JSONL vs PostgreSQL"
    return Scenario(name="state-postgres", title=title, hosts=0, cases=cases)


def _local_playbook(ws: Workspace, steps: int, module: str) -> Path:
    return ansible.write_playbook(
        ws.directory("local") / f"playbook-{module}.yml",
        hosts="localhost",
        steps=steps,
        module=module,
        local=True,
    )


def build_big_output(ws: Workspace) -> Scenario:
    size, where = ws.sizes.big_output_bytes, ws.directory("bigout-local")
    book = runbook.write_runbook(
        where / "runbook.yaml",
        name="bench-bigout-local",
        hosts="local",
        steps=1,
        run=big_output_command(size),
    )
    cases = (
        runbook.run_case(book, units=1, capture_stdout=False),
        floor.drain_local_case(size),
    )
    title = f"big output, local: one step printing {size / 1e6:g} MB"
    return Scenario(name="bigout-local", title=title, hosts=0, cases=cases)


def build_validate(ws: Workspace) -> Scenario:
    files, steps = ws.sizes.validate_files, ws.sizes.validate_steps
    where = ws.directory("validate")
    books, playbooks = where / "runbooks", where / "playbooks"
    for index in range(1, files + 1):
        runbook.write_runbook(
            books / f"book{index:03d}.yaml",
            name=f"bench-validate-{index}",
            hosts="local",
            steps=steps,
            run="echo step {{ 1 + 1 }}",
        )
    listed = [
        ansible.write_playbook(
            playbooks / f"play{index:03d}.yml", hosts="localhost", steps=steps,
            module="command", local=True,
        )
        for index in range(1, files + 1)
    ]  # fmt: skip
    inventory = ansible.write_local_inventory(where / "inventory.ini")
    config = ansible.write_config(where, inventory=inventory, forks=1, known_hosts=None)
    cases = (
        runbook.validate_case(books, units=files * steps),
        ansible.syntax_check_case(listed, config=config, units=files * steps),
    )
    title = f"validation: {files} runbooks x {steps} steps"
    return Scenario(name="validate", title=title, hosts=0, cases=cases)
