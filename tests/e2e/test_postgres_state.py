"""The PostgreSQL backend on the worst day, against a real server: a database that
cannot be reached is exit 2 with its cause, a malformed URL is exit 2, the password
never shows; a killed controller leaves no lock and a verifiable chain that another
controller resumes; a database lost mid-run stops the run (exit 3) keeping what was
recorded; file logs move in and out with the chain intact; edits are caught."""

from __future__ import annotations

import json
import os
import signal
import time

import psycopg
import pytest

from tests.conftest import Backend, start_run
from tests.support.sshd import processes_matching

pytestmark = pytest.mark.e2e

PASSWORD = "pg-S3cret-pw"
SLOW = """
    version: 1
    name: slow
    lock: app
    steps:
      - id: one
        run: echo one >> {log}
      - id: wait
        run: while [ ! -e {go} ]; do sleep 0.05; done; echo wait >> {log}
      - id: three
        run: echo three >> {log}
"""


@pytest.fixture
def db(cli_env, state_db, state_dir) -> Backend:
    cli_env["RUNBOOK_STATE_URL"] = state_db
    return Backend("postgres", state_dir, state_db)


def _slow(write_runbook, tmp_path):
    return write_runbook(SLOW.format(log=tmp_path / "log", go=tmp_path / "go"))


def _log(tmp_path):
    path = tmp_path / "log"
    return path.read_text().split() if path.exists() else []


def _hello(write_runbook, tmp_path):
    return write_runbook(f"""
        version: 1
        name: hello
        steps:
          - id: touch
            run: touch {tmp_path}/ran
    """)


@pytest.mark.parametrize(
    ("how", "said"),
    [
        ("refused", "connection refused: no PostgreSQL server is listening at"),
        ("auth", "authentication failed for 'runbook_pw': wrong password"),
        ("tls", "TLS: sslmode=require requires TLS and the server does not offer it"),
        ("no-db", "database 'nowhere' does not exist"),
    ],
)
def test_a_database_that_cannot_be_used_is_exit_2_with_its_cause(
    postgres_server, runbook_cli, write_runbook, tmp_path, how, said
):
    if how == "auth":
        postgres_server.sql("DROP ROLE IF EXISTS runbook_pw")
        postgres_server.create_role("runbook_pw", PASSWORD)
    urls = {
        "refused": f"postgresql://u:{PASSWORD}@/x?host={tmp_path}/none&port=5432",
        "auth": postgres_server.url(user="runbook_pw", password="wrong-" + PASSWORD),
        "tls": postgres_server.url(tcp=True, sslmode="require", password=PASSWORD),
        "no-db": postgres_server.url("nowhere", password=PASSWORD),
    }
    rb = _hello(write_runbook, tmp_path)
    result = runbook_cli("run", str(rb), "--state", urls[how])
    assert result.code == 2, result.output
    assert said.replace("'runbook_pw'", "runbook_pw") in result.stderr
    assert "nothing ran" in result.stderr and "Traceback" not in result.output
    assert PASSWORD not in result.output and "***" in result.stderr
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql://db:notaport/x", "the port is not a number"),
        ("postgresql:///x?bogus=1", 'invalid URI query parameter: "bogus"'),
        ("postgresql:///x?sslmode=maybe", "sslmode='maybe' is not one of"),
        ("mysql://db/x", "expected a postgresql:// URL"),
        ("postgresql://u:pw@[::1/x", "Invalid IPv6 URL"),
        # passwords not percent-encoded: refused, and never shown, not even in part
        ("postgresql://u:pa/ss99@db:5432/x", "must be percent-encoded"),
        ("postgresql://u:p@ss:w/o#rd@db:5432/x", "must be percent-encoded"),
        ("postgresql://u:pass 99@db/x", 'unexpected spaces found in "***"'),
    ],
)
def test_a_malformed_url_is_exit_2_naming_what_is_wrong(
    runbook_cli, write_runbook, tmp_path, url, said
):
    rb = _hello(write_runbook, tmp_path)
    result = runbook_cli("run", str(rb), env={"RUNBOOK_STATE_URL": url})
    assert result.code == 2, result.output
    assert said in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "ran").exists()
    for secret in ("pa/ss99", "p@ss", "w/o#rd", "pass 99", "ss99", "o#rd"):
        assert secret not in result.output


def test_the_password_appears_nowhere_even_when_given_in_the_url(
    postgres_server, state_db, runbook_cli, write_runbook, tmp_path, state_dir
):
    postgres_server.sql("DROP ROLE IF EXISTS runbook_pw")
    postgres_server.create_role("runbook_pw", PASSWORD)
    name = state_db.split("/")[3].split("?")[0]
    postgres_server.sql(f'GRANT ALL ON DATABASE "{name}" TO runbook_pw')
    postgres_server.sql("GRANT ALL ON SCHEMA public TO runbook_pw", dbname=name)
    url = postgres_server.url(name, user="runbook_pw", password=PASSWORD)
    rb = write_runbook("""
        version: 1
        name: leaky
        steps:
          - id: show
            run: echo "state is $RUNBOOK_STATE_URL"
    """)
    report = tmp_path / "r.json"
    given = runbook_cli(
        "run", str(rb), "--state", url, "--output", "json", "--report",
        f"json:{report}",
    )  # fmt: skip
    assert given.code == 0, given.output
    inherited = runbook_cli("run", str(rb), env={"RUNBOOK_STATE_URL": url})
    assert inherited.code == 0, inherited.output
    assert "state is postgresql://runbook_pw:***@" in inherited.stderr
    listed = runbook_cli("audit", "list", "--state", url)
    shown = runbook_cli("audit", "show", "last", "--json", "--state", url)
    everything = given.output + inherited.output + listed.output + shown.output
    lines = Backend("postgres", state_dir, url).lines()
    everything += b"\n".join(lines).decode() + report.read_text()
    assert PASSWORD not in everything
    started = json.loads(lines[0])
    assert "runbook_pw:***@" in started["command_line"]


def test_a_killed_controller_leaves_no_lock_and_another_resumes_its_run(
    db, cli_env, runbook_cli, write_runbook, tmp_path
):
    rb = _slow(write_runbook, tmp_path)
    victim = start_run(cli_env, tmp_path, "run", str(rb), new_session=True)
    db.wait_for('"step.started"', 2)
    run_id = db.records()[0]["run_id"]
    os.killpg(victim.pid, signal.SIGKILL)  # the controller
    victim.communicate(timeout=10)
    killed = time.monotonic()
    for pid in processes_matching(str(tmp_path / "go")):  # its orphaned step
        os.kill(pid, signal.SIGKILL)
    while runbook_cli("unlock", "app").code != 0:  # held until the server notices
        assert time.monotonic() - killed < 1.0, "the lock outlived its controller"
    assert time.monotonic() - killed < 1.0
    verified = runbook_cli("audit", "verify")
    assert verified.code == 0, verified.output
    assert [r["event"] for r in db.records()][-1] == "step.started"
    (tmp_path / "go").touch()
    resumed = runbook_cli("resume", run_id)
    assert resumed.code == 0, resumed.output
    assert "not repeated: one" in resumed.stderr
    assert _log(tmp_path) == ["one", "wait", "three"]
    assert runbook_cli("audit", "verify").code == 0


def test_losing_the_database_mid_run_stops_before_the_next_step_exit_3(
    db, postgres_server, cli_env, runbook_cli, write_runbook, tmp_path
):
    rb = _slow(write_runbook, tmp_path)
    run = start_run(cli_env, tmp_path, "run", str(rb))
    db.wait_for('"step.started"', 2)
    before = db.lines()
    name = db.url.split("/")[3].split("?")[0]
    postgres_server.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        f" WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    )
    (tmp_path / "go").touch()
    _out, err = run.communicate(timeout=30)
    assert run.returncode == 3, err
    assert "cannot write" in err and "no further step starts" in err
    assert _log(tmp_path) == ["one", "wait"]  # step three never started
    assert db.lines() == before  # nothing recorded is lost
    assert runbook_cli("audit", "verify").code == 0
    assert runbook_cli("unlock", "app").code == 0  # its lock went with it


def test_a_file_log_moves_into_the_database_and_back_with_its_chain(
    db, runbook_cli, write_runbook, tmp_path, state_dir
):
    rb = write_runbook(f"""
        version: 1
        name: moved
        lock: app
        steps:
          - id: make
            run: echo made >> {tmp_path}/log
            undo: echo unmade >> {tmp_path}/log
    """)
    key = {"RUNBOOK_AUDIT_KEY": "team key"}  # a keyed log: its hmacs move with it
    files = {"RUNBOOK_STATE_URL": "", **key}
    first = runbook_cli("run", str(rb), env=files)
    assert first.code == 0, first.output
    log = state_dir / "audit.jsonl"
    unkeyed = runbook_cli("state", "import", str(log))  # hmacs it cannot check
    assert unkeyed.code == 2 and "only RUNBOOK_AUDIT_KEY can check" in unkeyed.stderr
    assert db.lines() == []
    imported = runbook_cli("state", "import", str(log), env=key)
    assert imported.code == 0, imported.output
    assert f"imported {len(log.read_bytes().splitlines())} records" in imported.stderr
    assert "saved state of 1 run(s)" in imported.stderr
    assert db.lines() == log.read_bytes().splitlines()
    again = runbook_cli("state", "import", str(log), env=key)
    assert again.code == 0 and "nothing to import" in again.stderr
    run_id = first.stderr.split(", run ", 1)[1].split(")", 1)[0]
    rolled = runbook_cli("rollback", run_id, env=key)  # the saved state came along
    assert rolled.code == 0, rolled.output
    assert _log(tmp_path) == ["made", "unmade"]
    assert runbook_cli("run", str(rb), env=files).code == 0  # the file log grows
    grown = runbook_cli("state", "import", str(log), env=key)
    assert grown.code == 2 and "does not continue" in grown.stderr
    exported = tmp_path / "out" / "audit.jsonl"
    exported.parent.mkdir()
    assert runbook_cli("audit", "export", str(exported), env=key).code == 0
    checked = runbook_cli(
        "audit", "verify", "--state-dir", str(exported.parent), env=files
    )
    assert checked.code == 0, checked.output


def test_an_edit_in_the_database_is_caught_and_the_table_refuses_changes(
    db, runbook_cli, write_runbook, tmp_path
):
    key = {"RUNBOOK_AUDIT_KEY": "team key"}
    rb = _hello(write_runbook, tmp_path)
    assert runbook_cli("run", str(rb), env=key).code == 0
    assert runbook_cli("audit", "verify", env=key).code == 0
    with psycopg.connect(db.url, autocommit=True) as connection:
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            connection.execute("DELETE FROM runbook_audit WHERE n = 2")
        connection.execute("ALTER TABLE runbook_audit DISABLE TRIGGER USER")
        line = connection.execute("SELECT line FROM runbook_audit WHERE n = 3")
        edited = bytes(line.fetchone()[0]).replace(b"touch", b"t0uch")
        assert b"t0uch" in edited
        connection.execute("UPDATE runbook_audit SET line = %s WHERE n = 3", (edited,))
    broken = runbook_cli("audit", "verify", env=key)
    assert broken.code == 1
    assert "record 3: chain broken: line 3: hmac does not match" in broken.stderr


def test_forwarding_to_syslog_works_from_the_database_too(
    db, runbook_cli, write_runbook, tmp_path
):
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "log.sock"))
    sock.settimeout(5)
    rb = _hello(write_runbook, tmp_path)
    result = runbook_cli(
        "run", str(rb), "--audit-forward", f"unix://{tmp_path}/log.sock"
    )
    assert result.code == 0, result.output
    got = [sock.recv(65536) for _ in db.lines()]
    sock.close()
    assert [message.split(b"] ", 1)[1] for message in got] == db.lines()


def test_the_config_file_can_name_the_database(
    postgres_server, state_db, runbook_cli, write_runbook, tmp_path, state_dir
):
    (tmp_path / ".git").mkdir()
    (tmp_path / "runbook.toml").write_text(f'state = "{state_db}"\n')
    rb = _hello(write_runbook, tmp_path)
    result = runbook_cli("run", str(rb))
    assert result.code == 0, result.output
    assert len(Backend("postgres", state_dir, state_db).lines()) > 2
    assert not (state_dir / "audit.jsonl").exists()  # nothing went to the files
    assert runbook_cli("audit", "list").stdout.count("succeeded") == 1
