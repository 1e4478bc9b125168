"""Locks over real SSH hosts: two controllers never deadlock, and a run that ends for
any reason leaves no lock behind, on the controller or on any host."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.conftest import start_run, wait_for_steps

pytestmark = [pytest.mark.e2e, pytest.mark.ssh]

LOCK = ".local/state/runbook/locks/deploy.lock"


def _runbook(write_runbook, name, hosts, extra=""):
    return write_runbook(
        f"""
        version: 1
        name: {name}
        hosts: "{hosts}"
        lock: deploy
        {extra}
        steps:
          - id: work
            run: sleep 0.3
        """,
        f"{name}.yaml",
    )


def _no_lock_left(fleet, *state_dirs):
    held = [s.name for s in fleet.servers if (s.home / LOCK).exists()]
    held += [str(d) for d in state_dirs if (d / "locks" / "deploy.lock").exists()]
    assert held == []


def test_two_controllers_in_opposite_host_orders_never_deadlock_or_leak(
    cli_env, write_runbook, fleet, tmp_path
):
    inventory = fleet.inventory()
    forward = _runbook(write_runbook, "forward", "web0,web1,web2")
    backward = _runbook(write_runbook, "backward", "web2,web1,web0")
    controllers = [tmp_path / "ctl-a", tmp_path / "ctl-b"]
    outcomes = []
    for _round in range(6):
        procs = []
        for runbook, state in zip((forward, backward), controllers, strict=True):
            env = {**cli_env, "RUNBOOK_STATE_DIR": str(state)}
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "runbook_engine",
                        "run",
                        str(runbook),
                        "-i",
                        str(inventory),
                    ],
                    env=env,
                    cwd=tmp_path,
                    text=True,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            )
        results = [(p, *p.communicate(timeout=60)) for p in procs]  # no deadlock
        codes = sorted(p.returncode for p, _, _ in results)
        outcomes.append(codes)
        assert set(codes) <= {0, 4}, [err for _, _, err in results]
        assert 0 in codes  # never both refused, each holding part of the set
        for proc, _, err in results:
            if proc.returncode == 4:
                assert "is held by" in err
        _no_lock_left(fleet, *controllers)
    assert outcomes  # six rounds ran


@pytest.mark.parametrize("ending", ["no_go", "failure", "sigint"])
def test_a_run_that_ends_any_way_releases_every_lock(
    cli_env, runbook_cli, write_runbook, fleet, state_dir, tmp_path, ending
):
    inventory = fleet.inventory()
    extra = {
        "no_go": "preconditions:\n          - id: gate\n            run: exit 1",
        "failure": "verify:\n          - id: broken\n            run: exit 3",
        "sigint": "",
    }[ending]
    rb = _runbook(write_runbook, "ending", "web", extra)
    if ending == "sigint":
        slow = rb.read_text().replace("sleep 0.3", "sleep 30")
        rb.write_text(slow)
        proc = start_run(cli_env, tmp_path, "run", str(rb), "-i", str(inventory))
        wait_for_steps(state_dir, 3)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        assert proc.returncode == 130
    else:
        result = runbook_cli("run", str(rb), "-i", str(inventory))
        assert result.code == {"no_go": 4, "failure": 1}[ending], result.output
    _no_lock_left(fleet, state_dir)
