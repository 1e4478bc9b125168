"""Many controllers, one database: 8 controller processes run 50 short runs each,
all under the same lock, at once. The chain stays one verifiable line, every record
of every run is there exactly once, and the lock is never held by two runs at once
(each run's step enters a shared critical section and checks nobody else is in)."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from runbook_engine.engine.pgdb import Database
from runbook_engine.engine.pgstore import SCHEMA_LOCK, PostgresStore, _ensure_schema
from runbook_engine.record.chain import ZERO_HASH, sha256_hex
from tests.conftest import ROOT, Backend

pytestmark = pytest.mark.e2e

CONTROLLERS = 8
RUNS = 50

# One controller: a process that keeps one store open and runs RUNS runs through
# the engine (what `runbook run` does, without paying Python's start-up 400 times).
CONTROLLER = """
import json, sys
from pathlib import Path
from runbook_engine.engine.request import RunRequest, prepare
from runbook_engine.engine.session import Session
from runbook_engine.engine.store import open_store

url, book, state_dir, runs = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
statuses = []
with open_store(state_dir, url) as store:
    for _ in range(runs):
        prepared = prepare(RunRequest(runbook=book, state_dir=state_dir))
        session = Session(prepared, store=store, sinks=[], live=lambda host, step: None)
        statuses.append((session.run_id, session.run().status.value))
print(json.dumps(statuses))
"""

STEP = (
    'if ! mkdir "{d}/inside" 2>/dev/null; then echo OVERLAP >> "{d}/shared"; exit 1; fi;'
    ' echo "{{{{ run.id }}}}" >> "{d}/shared"; sleep 0.002; rmdir "{d}/inside"'
)


def reap(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_eight_controllers_share_one_chain_and_one_lock(
    state_db, state_dir, tmp_path, cli_env
):
    book = tmp_path / "critical.yaml"
    book.write_text(
        "version: 1\nname: critical\nlock: shared\nsteps:\n"
        f"  - id: inside\n    run: {json.dumps(STEP.format(d=tmp_path))}\n"
    )
    began = time.monotonic()
    controllers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CONTROLLER,
                state_db,
                str(book),
                str(state_dir),
                str(RUNS),
            ],
            env=cli_env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(CONTROLLERS)
    ]
    outcomes = []
    try:
        for controller in controllers:
            out, err = controller.communicate(timeout=120)
            assert controller.returncode == 0, err[-2000:]
            outcomes += [tuple(pair) for pair in json.loads(out)]
    finally:
        reap(controllers)  # a failed assertion leaves no process or pipe behind
    elapsed = time.monotonic() - began
    statuses = collections.Counter(status for _run, status in outcomes)
    assert len(outcomes) == CONTROLLERS * RUNS
    assert set(statuses) <= {"succeeded", "no_go"}, statuses
    assert statuses["succeeded"] >= 1 and statuses["no_go"] >= 1, statuses  # contended

    # the lock: never two runs inside, and every run that got it went through once
    shared = (tmp_path / "shared").read_text().split()
    assert "OVERLAP" not in shared
    succeeded = sorted(run for run, status in outcomes if status == "succeeded")
    assert sorted(shared) == succeeded

    # the chain: one line, no gap, nothing lost or duplicated
    lines = Backend("postgres", state_dir, state_db).lines()
    records = [json.loads(line) for line in lines]
    previous = ZERO_HASH
    for line, record in zip(lines, records, strict=True):
        assert record["prev_hash"] == previous
        previous = sha256_hex(line)
    by_run = collections.defaultdict(list)
    for record in records:
        by_run[record["run_id"]].append(record)
    assert set(by_run) == {run for run, _status in outcomes}
    for run, status in outcomes:
        mine = by_run[run]
        assert [r["seq"] for r in mine] == list(range(1, len(mine) + 1)), run
        events = [r["event"] for r in mine]
        assert events[0] == "run.started" and events.count("run.finished") == 1
        assert mine[-1]["status"] == status
        assert events.count("step.started") == (status == "succeeded")
    verified = subprocess.run(
        [sys.executable, "-m", "runbook_engine", "audit", "verify", "--state", state_db],
        env=cli_env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert f"ok: {len(lines)} records" in verified.stderr
    print(f"{len(outcomes)} runs, {len(lines)} records, {statuses} in {elapsed:.1f}s")


def test_a_controller_that_waited_while_another_made_the_tables_uses_them(
    state_db, tmp_path
):
    """Controllers started together on an empty database: one creates the tables
    while the others wait, and by the time they get in, runs are writing to them.
    A waiter must see the tables and go on, not create them again (which waits on
    the writers and deadlocks with them; seen in CI as "deadlock detected")."""
    opened: list[PostgresStore] = []
    with psycopg.connect(state_db, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", SCHEMA_LOCK)
        waiter = threading.Thread(
            target=lambda: opened.append(
                PostgresStore.connect(state_db, state_dir=tmp_path)
            )
        )
        waiter.start()
        deadline = time.monotonic() + 10
        waiting = (
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        )
        while other.execute(waiting).fetchone() != (1,):
            assert time.monotonic() < deadline, "the controller never waited"
            time.sleep(0.02)
        _ensure_schema(Database(other, "the other controller"))
        other.execute("BEGIN")
        other.execute("SELECT count(*) FROM runbook_audit")  # a run reading the chain
        other.execute("SELECT pg_advisory_unlock(%s, %s)", SCHEMA_LOCK)
        waiter.join(timeout=10)
        stalled = waiter.is_alive()
        other.execute("COMMIT")
        waiter.join()
    assert not stalled, "the waiting controller ran the DDL again"
    assert len(opened) == 1
    opened[0].close()
