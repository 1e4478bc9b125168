"""`runbook audit`: finding a run by `last` or a prefix, reading it as text with
filters, following a run in progress, and catching records cut off the end."""

from __future__ import annotations

import subprocess
import sys

import pytest

from runbook_engine.record.timeline import format_timeline
from tests.conftest import start_run, wait_for_steps

pytestmark = pytest.mark.e2e

FLAKY = """
    version: 1
    name: mixed
    on_failure: continue
    steps:
      - id: fine
        run: echo fine
      - id: broken
        run: echo broken; exit 3
"""


def _run_id(result) -> str:
    return result.stderr.split(", run ", 1)[1].split(")", 1)[0]


def test_show_last_or_a_prefix_with_filters_as_text(runbook_cli, write_runbook):
    rb = write_runbook(FLAKY)
    first = runbook_cli("run", str(rb))
    second = runbook_cli("run", str(rb))
    last = runbook_cli("audit", "show", "last")
    assert last.code == 0, last.output
    as_json = runbook_cli("audit", "show", "last", "--json").stdout
    assert _run_id(second) in as_json and _run_id(first) not in as_json
    day = _run_id(second)[:8]
    stamp = f"{day[:4]}-{day[4:6]}-{day[6:]} "  # the date, not only the time
    assert all(line.startswith(stamp) for line in last.stdout.splitlines())
    by_prefix = runbook_cli("audit", "show", _run_id(first)[:-2], "--json")
    assert by_prefix.code == 0 and _run_id(first) in by_prefix.stdout
    ambiguous = runbook_cli("audit", "show", _run_id(first)[:4])
    assert ambiguous.code == 2 and "is the start of 2 run ids" in ambiguous.stderr
    failed = runbook_cli("audit", "show", "last", "--status", "failed")
    lines = failed.stdout.splitlines()
    assert "run started" in lines[0] and "run finished" in lines[-1]
    assert [line for line in lines[1:-1] if "broken failed" in line] == lines[1:-1]
    only_fine = runbook_cli("audit", "show", "last", "--step", "fi*")
    assert "fine" in only_fine.stdout and "broken" not in only_fine.stdout
    nothing = runbook_cli("audit", "show", "last", "--host", "web*")
    assert "no record of that run matches" in nothing.stderr


def test_records_read_as_words_not_python_reprs():
    text = format_timeline(
        [
            {
                "ts": "2026-12-03T10:00:00.000Z",
                "event": "host.connected",
                "host": "web1",
                "facts": {
                    "connection": "ssh",
                    "address": "10.0.0.1:22",
                    "user": "deploy",
                    "host_key": "SHA256:abc",
                    "host_key_type": "ssh-ed25519",
                    "host_key_status": "known",
                },
            },
            {"ts": "2026-12-03T10:00:01.000Z", "event": "new.kind", "why": "a b"},
        ]
    )
    assert "connected web1: ssh deploy@10.0.0.1:22, host key ssh-ed25519" in text
    assert "{" not in text.splitlines()[0]
    assert 'new.kind why="a b"' in text


def test_follow_watches_a_run_in_progress_until_it_ends(
    cli_env, write_runbook, tmp_path, state_dir
):
    rb = write_runbook(f"""
        version: 1
        name: slow
        steps:
          - id: wait
            run: while [ ! -e {tmp_path}/go ]; do sleep 0.1; done
          - id: after
            run: echo after
    """)
    run = start_run(cli_env, tmp_path, "run", str(rb))
    wait_for_steps(state_dir, 1)
    follow = subprocess.Popen(
        [sys.executable, "-m", "runbook_engine", "audit", "show", "last", "-f"],
        env=cli_env,
        cwd=tmp_path,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    (tmp_path / "go").touch()
    out, err = follow.communicate(timeout=30)
    run.communicate(timeout=30)
    assert follow.returncode == 0, err
    assert "local after changed" in out and "run finished: succeeded" in out


def test_verify_expect_head_catches_records_cut_off_the_end(
    runbook_cli, write_runbook, state_dir
):
    rb = write_runbook(FLAKY)
    runbook_cli("run", str(rb))
    head = runbook_cli("audit", "verify").stdout.split()[1]
    runbook_cli("run", str(rb))
    grown = runbook_cli("audit", "verify", "--expect-head", head)
    assert grown.code == 0, grown.output  # the log grew: the old head is still there
    assert "the expected head is record" in grown.stderr
    latest = runbook_cli("audit", "verify").stdout.split()[1]
    log = state_dir / "audit.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-3]))  # the last records, cut off cleanly
    assert runbook_cli("audit", "verify").code == 0  # the chain alone cannot tell
    cut = runbook_cli("audit", "verify", "--expect-head", latest)
    assert cut.code == 1
    assert "records were cut off the end" in cut.stderr


def test_filters_and_hashes_that_cannot_be_right_are_exit_2(runbook_cli, write_runbook):
    rb = write_runbook(FLAKY)
    runbook_cli("run", str(rb))
    bogus = runbook_cli("audit", "show", "last", "--status", "bogus")
    assert bogus.code == 2 and "use one of changed, failed" in bogus.stderr
    assert runbook_cli("audit", "verify", "--expect-head", "abc").code == 2
    head = runbook_cli("audit", "verify").stdout.split()[1]
    prefix = runbook_cli("audit", "verify", "--expect-head", head[:12])
    assert prefix.code == 0, prefix.output


def test_export_creates_the_directory_it_writes_into(
    runbook_cli, write_runbook, tmp_path
):
    runbook_cli("run", str(write_runbook(FLAKY)))
    target = tmp_path / "new" / "dir" / "audit.jsonl"
    done = runbook_cli("audit", "export", str(target))
    assert done.code == 0, done.output
    assert target.read_text().count("\n") >= 4
    kept = target.read_bytes()
    again = runbook_cli("audit", "export", str(target))  # it may be a live audit log
    assert again.code == 2 and "the file exists" in again.stderr
    assert target.read_bytes() == kept
    assert runbook_cli("audit", "export", str(target), "--force").code == 0
    stdout = runbook_cli("audit", "export", "-")
    assert stdout.code == 0 and stdout.stdout.encode() == kept
    assert not (tmp_path / "-").exists()


def test_verify_without_the_key_says_the_hmacs_went_unchecked(
    runbook_cli, write_runbook
):
    key = {"RUNBOOK_AUDIT_KEY": "team key"}
    assert runbook_cli("run", str(write_runbook(FLAKY)), env=key).code in (0, 1)
    keyed = runbook_cli("audit", "verify", env=key)
    assert keyed.code == 0 and "hash chain and HMAC intact" in keyed.stderr
    assert "not checked" not in keyed.stderr
    unkeyed = runbook_cli("audit", "verify")
    assert unkeyed.code == 0 and "hash chain intact" in unkeyed.stderr
    assert "carry an HMAC that was not checked: set RUNBOOK_AUDIT_KEY" in unkeyed.stderr
