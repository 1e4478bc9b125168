"""Secrets never leak; the audit log is durable, chained and tamper-evident."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from tests.conftest import audit_records, start_run, wait_for_steps

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e

SECRET = "s3cr3t-Pa55'word\"x"


def _everything_written(state_dir: Path, tmp_path: Path, *texts: str) -> str:
    parts = list(texts)
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix != ".yaml":
            parts.append(path.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(parts)


def test_secret_values_are_masked_everywhere(
    runbook_cli, write_runbook, state_dir, tmp_path
):
    rb = write_runbook("""
        version: 1
        name: secretive
        secrets:
          db_password: {env: DB_PASSWORD}
        steps:
          - id: use_env
            env: {PGPASSWORD: "{{ secrets.db_password }}"}
            run: echo "password is $PGPASSWORD"; printf '%s' "$PGPASSWORD" | head -c 5; echo; echo "$PGPASSWORD" >&2
          - id: quoted
            run: echo {{ secrets.db_password | quote }}
          - id: as_json
            run: |
              echo '{{ {"p": secrets.db_password} | tojson }}'
          - id: split
            run: printf '%s' "$PGPASSWORD" | fold -w 4
            env: {PGPASSWORD: "{{ secrets.db_password }}"}
          - id: filtered
            run: echo {{ secrets.db_password | upper }} {{ secrets.db_password | lower }} {{ secrets.db_password | reverse }} {{ secrets.db_password | e | quote }}
          - id: fail
            run: echo "bad {{ secrets.db_password | quote }}"; exit 2
    """)
    result = runbook_cli(
        "run",
        str(rb),
        "--output",
        "json",
        "--report",
        f"json:{tmp_path}/r.json",
        "--report",
        f"markdown:{tmp_path}/r.md",
        env={"DB_PASSWORD": SECRET},
    )
    assert result.code == 1, result.output
    assert "password is ***" in result.stderr
    everything = _everything_written(state_dir, tmp_path, result.stdout, result.stderr)
    for form in (SECRET, shlex.quote(SECRET), json.dumps(SECRET)[1:-1]):
        assert form not in everything
    escaped = SECRET.replace("'", "&#39;").replace('"', "&#34;")
    for form in (SECRET.upper(), SECRET.lower(), SECRET[::-1], escaped):  # filters
        assert form not in everything
    assert "***" in (state_dir / "audit.jsonl").read_text()


def test_missing_secrets_are_exit_2_naming_each_in_one_pass(
    runbook_cli, write_runbook, state_dir, tmp_path
):
    rb = write_runbook(f"""
        version: 1
        name: needs_secret
        secrets:
          token: {{env: API_TOKEN}}
          key: {{file: {tmp_path}/nosuch}}
          db: {{command: [no-such-secret-manager, get, db]}}
        steps:
          - id: s
            run: "true"
    """)
    result = runbook_cli("run", str(rb))
    assert result.code == 2
    assert "secret 'token'" in result.stderr and "API_TOKEN" in result.stderr
    assert f"secret 'key': cannot read {tmp_path}/nosuch" in result.stderr
    assert "secret 'db': command no-such-secret-manager get db" in result.stderr
    assert not (state_dir / "audit.jsonl").exists()  # nothing ran


def test_a_secret_manager_command_gives_the_value_masked_everywhere(
    runbook_cli, write_runbook, state_dir, tmp_path
):
    # a stand-in secret manager next to the runbook: `command` runs in its directory
    (tmp_path / "vault.sh").write_text(f"printf '%s\\n' {shlex.quote(SECRET)}\n")
    rb = write_runbook("""
        version: 1
        name: from_a_manager
        secrets:
          db_password: {command: [sh, vault.sh]}
          optional_token: {command: [sh, -c, 'echo "vault sealed" >&2; exit 1'], optional: true}
        steps:
          - id: use
            env: {PGPASSWORD: "{{ secrets.db_password }}"}
            run: echo "got $PGPASSWORD ($(printf %s "$PGPASSWORD" | wc -c) chars)"
          - id: optional_is_empty
            run: test -z "$T" && echo "optional token is empty"
            env: {T: "{{ secrets.optional_token }}"}
    """)
    result = runbook_cli("run", str(rb), "-v", "--report", f"json:{tmp_path}/r.json")
    assert result.code == 0, result.output
    # the trailing newline is stripped: the command saw exactly the value
    assert f"got *** ({len(SECRET)} chars)" in result.stderr
    assert "optional token is empty" in result.stderr
    assert "optional secret 'optional_token'" in result.stderr  # with -v
    assert "vault sealed" in result.stderr  # why it is empty
    quiet = runbook_cli("run", str(rb))
    assert "optional secret" not in quiet.stderr  # expected: not shown by default
    absent = [r for r in audit_records(state_dir) if r.get("kind") == "secret.absent"]
    assert len(absent) == 2  # but always in the audit log
    everything = _everything_written(state_dir, tmp_path, result.stdout, result.stderr)
    assert SECRET not in everything.replace(shlex.quote(SECRET), "")


@pytest.mark.parametrize(
    ("command", "said"),
    [
        ('echo "denied for $API_TOKEN" >&2; exit 3', "exit code 3: denied for ***"),
        ("true", "printed nothing"),
    ],
)
def test_a_failing_secret_command_stops_before_anything_runs(
    runbook_cli, write_runbook, state_dir, command, said
):
    rb = write_runbook(f"""
        version: 1
        name: sealed
        secrets:
          token: {{env: API_TOKEN}}
          db: {{command: [sh, -c, {json.dumps(command)}]}}
        steps:
          - id: s
            run: touch should-not-exist
    """)
    result = runbook_cli("run", str(rb), env={"API_TOKEN": "s3cr3t-leak"})
    assert result.code == 2, result.output
    assert "secret 'db': command sh -c" in result.stderr and said in result.stderr
    assert "s3cr3t-leak" not in result.output  # another secret, masked in the stderr
    assert "Traceback" not in result.output
    assert not (state_dir / "audit.jsonl").exists()  # nothing ran


def test_audit_records_every_step_with_a_verifiable_chain(
    runbook_cli, write_runbook, state_dir
):
    rb = write_runbook("""
        version: 1
        name: audited
        steps:
          - id: one
            run: echo one
          - id: two
            run: echo two
    """)
    assert runbook_cli("run", str(rb)).code == 0
    assert runbook_cli("run", str(rb)).code == 0
    records = audit_records(state_dir)
    events = [r["event"] for r in records[: len(records) // 2]]
    assert events == [
        "run.started",
        "batch.started",
        "step.started",
        "step.finished",
        "step.started",
        "step.finished",
        "run.finished",
    ]
    first = records[0]
    assert first["prev_hash"] == "0" * 64
    assert first["operator"] == "tester@ci" and len(first["runbook_sha256"]) == 64
    finished = [r for r in records if r["event"] == "step.finished"]
    assert finished[0]["command"] == "echo one" and finished[0]["stdout_tail"] == "one"
    verify = runbook_cli("audit", "verify")
    assert verify.code == 0, verify.output
    head = verify.stdout.split()[-1]
    import hashlib

    last_line = (state_dir / "audit.jsonl").read_bytes().rstrip(b"\n").split(b"\n")[-1]
    assert head == hashlib.sha256(last_line).hexdigest()
    listing = runbook_cli("audit", "list")
    assert listing.stdout.count("succeeded") == 2
    run_id = records[0]["run_id"]
    show = runbook_cli("audit", "show", run_id)
    assert (
        "local two changed" in show.stdout and "run finished: succeeded" in show.stdout
    )


@pytest.mark.parametrize("tamper", ["edit", "delete", "truncate"])
def test_audit_verify_detects_tampering(runbook_cli, write_runbook, state_dir, tamper):
    rb = write_runbook("""
        version: 1
        name: audited
        steps:
          - id: one
            run: echo one
    """)
    assert runbook_cli("run", str(rb)).code == 0
    assert runbook_cli("run", str(rb)).code == 0
    log = state_dir / "audit.jsonl"
    lines = log.read_bytes().split(b"\n")[:-1]
    if tamper == "edit":
        assert b"echo one" in lines[3]
        lines[3] = lines[3].replace(b"echo one", b"echo 0ne")
        log.write_bytes(b"\n".join(lines) + b"\n")
        expected_code, expected = 1, ":5: chain broken"
    elif tamper == "delete":
        del lines[3]
        log.write_bytes(b"\n".join(lines) + b"\n")
        expected_code, expected = 1, ":4: chain broken"
    else:
        log.write_bytes(
            b"\n".join(lines)
            + b"\n"
            + b'{"ts": "2026-01-01T00:00:00Z", "run_id": "x", "se'
        )
        expected_code, expected = 0, "truncated last line"
    result = runbook_cli("audit", "verify")
    assert result.code == expected_code, result.output
    assert expected in result.stderr
    if tamper == "truncate":
        assert runbook_cli("run", str(rb)).code == 0
        events = [r["event"] for r in audit_records_tolerant(log)]
        assert "audit.repaired" in events
        assert runbook_cli("audit", "verify").code == 0


def audit_records_tolerant(log: Path) -> list[dict[str, object]]:
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def test_unusable_audit_log_refuses_to_start_with_exit_4(
    runbook_cli, write_runbook, state_dir, tmp_path
):
    rb = write_runbook("""
        version: 1
        name: audited
        steps:
          - id: one
            run: touch ran
    """)
    state_dir.mkdir(mode=0o700)
    (state_dir / "audit.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
    result = runbook_cli("run", str(rb))
    assert result.code == 4, result.output
    assert "audit.jsonl" in result.stderr
    assert not (tmp_path / "ran").exists()


def test_ctrl_c_kills_the_step_runs_finally_and_records_interrupted(
    cli_env, write_runbook, state_dir, tmp_path
):
    rb = write_runbook(f"""
        version: 1
        name: long
        steps:
          - id: long
            run: "echo started; sleep 30.123"
          - id: never
            run: touch {tmp_path}/never
        finally:
          - id: cleanup
            run: touch {tmp_path}/cleaned
    """)
    proc = start_run(cli_env, tmp_path, "run", str(rb))
    wait_for_steps(state_dir, 1)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert time.monotonic() - started < 5
    assert (tmp_path / "cleaned").exists() and not (tmp_path / "never").exists()
    finished = [r for r in audit_records(state_dir) if r["event"] == "run.finished"]
    assert finished[-1]["status"] == "interrupted"
    assert (
        "sleep 30.123"
        not in subprocess.run(
            ["ps", "-eo", "args"], capture_output=True, text=True
        ).stdout
    )


def test_state_dir_and_files_are_private_whatever_the_umask(
    runbook_cli, write_runbook, state_dir
):
    rb = write_runbook("""
        version: 1
        name: private
        steps:
          - id: one
            run: "true"
    """)
    old = os.umask(0)
    try:
        assert runbook_cli("run", str(rb)).code == 0
    finally:
        os.umask(old)
    assert state_dir.stat().st_mode & 0o777 == 0o700
    assert (state_dir / "audit.jsonl").stat().st_mode & 0o777 == 0o600


def test_audit_write_failing_mid_run_stops_before_the_next_step_exit_3(
    cli_env, write_runbook, state_dir, tmp_path
):
    import resource

    steps = "".join(
        f"  - id: s{i}\n    run: touch {tmp_path}/ran-{i}\n" for i in range(40)
    )
    rb = write_runbook("version: 1\nname: fills\nsteps:\n" + steps)

    def small_files() -> None:  # the audit log may not grow past 6 KB: "disk full"
        resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000))

    done = subprocess.run(
        [sys.executable, "-m", "runbook_engine", "run", str(rb)],
        env=cli_env,
        capture_output=True,
        text=True,
        preexec_fn=small_files,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 3, done.stderr
    assert "audit log" in done.stderr and "cannot write" in done.stderr
    ran = len(list(tmp_path.glob("ran-*")))
    assert 0 < ran < 40
    records = audit_records_tolerant(
        state_dir / "audit.jsonl"
    )  # the failed write is torn
    started = [r["step"] for r in records if r["event"] == "step.started"]
    assert ran <= len(started)  # no step ran without its durable step.started record


def test_stale_lock_after_kill_is_reported_and_broken_by_unlock(
    cli_env, runbook_cli, write_runbook, state_dir, tmp_path
):
    rb = write_runbook("""
        version: 1
        name: locked
        lock: release
        steps:
          - id: long
            run: sleep 30
    """)
    proc = start_run(cli_env, tmp_path, "run", str(rb), new_session=True)
    wait_for_steps(state_dir, 1)
    held = runbook_cli("run", str(rb))
    assert held.code == 4 and "tester@ci" in held.stderr
    os.killpg(proc.pid, signal.SIGKILL)  # the holder dies without releasing
    proc.communicate()
    stale = runbook_cli("run", str(rb))
    assert stale.code == 4
    assert "stale" in stale.stderr and "runbook unlock release" in stale.stderr
    broken = runbook_cli("unlock", "release")
    assert broken.code == 0, broken.output
    assert "broke lock 'release'" in broken.stderr
    assert [r for r in audit_records(state_dir) if r["event"] == "lock.broken"]
    fast = write_runbook(rb.read_text().replace("sleep 30", "echo done"))
    assert runbook_cli("run", str(fast)).code == 0


def test_internal_error_is_exit_70_with_a_masked_crash_file(
    cli_env, write_runbook, state_dir, tmp_path
):
    rb = write_runbook("""
        version: 1
        name: buggy
        secrets:
          token: {env: API_TOKEN}
        steps:
          - id: one
            run: "true"
    """)
    # stand in for a bug deep in the engine: an unexpected exception carrying a secret
    inject = (
        "import sys, runbook_engine.engine.session as s\n"
        "def broken(self):\n"
        "    raise KeyError('oops ' + self.prepared.secrets['token'])\n"
        "s.Session.run = broken\n"
        "from runbook_engine.cli import main\n"
        "sys.argv = ['runbook', 'run', sys.argv[1]]\n"
        "main()\n"
    )
    env = dict(cli_env, API_TOKEN=SECRET)
    done = subprocess.run(
        [sys.executable, "-c", inject, str(rb)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 70, done.stderr
    assert "internal error: this is a bug in runbook" in done.stderr
    assert "Traceback" not in done.stderr
    crash = next(state_dir.glob("crash-*.log"))
    assert str(crash) in done.stderr
    text = crash.read_text()
    assert "KeyError" in text and "oops ***" in text and SECRET not in text
    assert crash.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("after", [0.0, 0.05, 0.2, "step"])
def test_ctrl_c_at_any_moment_of_start_up_is_one_line_and_exit_130(
    cli_env, write_runbook, tmp_path, state_dir, after
):
    # a slow secret manager, then the audit log and a step: Ctrl-C while the
    # secret is read, just after, or once the step runs
    marker = tmp_path / "reading"
    rb = write_runbook(f"""
        version: 1
        name: slow_start
        secrets:
          token: {{command: [sh, -c, 'touch {marker}; sleep 0.3; echo t0ken-value']}}
        steps:
          - id: wait
            run: sleep 5
    """)
    proc = start_run(cli_env, tmp_path, "run", str(rb))
    if after == "step":
        wait_for_steps(state_dir, 1)
    else:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(after)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Aborted" not in err
    # before the run starts: exactly one line; once it runs: its own summary
    assert err.strip().splitlines() == ["interrupted"] or "result: interrupted" in err
