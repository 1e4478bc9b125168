"""The audit log: a hash chain on real files, written by real processes."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from subprocess import PIPE
from typing import Any

import pytest

from runbook_engine.errors import AuditError, ExitCode, StateDirError
from runbook_engine.record.audit import (
    AUDIT_FILE,
    REPAIRED_EVENT,
    ZERO_HASH,
    AuditLog,
    key_from_env,
    list_runs,
    read_records,
    run_records,
    verify,
)

REPO = Path(__file__).resolve().parents[2]
KEY = b"correct horse battery staple"

# A child process that appends COUNT records, one per append() call.
APPENDER = """
import sys
from pathlib import Path
from runbook_engine.record.audit import AuditLog
state, run_id = Path(sys.argv[1]), sys.argv[2]
count, size = int(sys.argv[3]), int(sys.argv[4])
log = AuditLog.open(state, key=None, run_id=run_id)
print("ready", flush=True)
if sys.argv[5:] == ["wait"]:
    sys.stdin.readline()
import time
for seq in range(1, count + 1):
    log.append([{"ts": "t", "run_id": run_id, "seq": seq, "event": "step.started",
                 "output": "x" * size}])
    if sys.argv[5:] == ["wait"]:
        time.sleep(0.002)  # as the engine does: appends between steps, not a burst
"""


def _record(seq: int, run_id: str = "r1", **fields: Any) -> dict[str, Any]:
    ts = f"2024-05-01T10:{seq // 60 % 60:02d}:{seq % 60:02d}.000Z"
    record = {"ts": ts, "run_id": run_id, "seq": seq, "event": "step.finished"}
    return record | fields


def _write(state: Path, count: int, *, key: bytes | None = None) -> Path:
    with AuditLog.open(state, key=key, run_id="r1") as log:
        for seq in range(1, count + 1):
            log.append([_record(seq, step=f"s{seq}")])
    return state / AUDIT_FILE


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def _put_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _run_child(code: str, *args: object, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_chain_of_records_verifies_and_reports_head_hash(tmp_path: Path) -> None:
    path = _write(tmp_path, 5)
    lines = _lines(path)
    report = verify(path, None)
    assert report.ok and report.records == 5
    assert report.head_hash == _sha(lines[-1])
    first, second = json.loads(lines[0]), json.loads(lines[1])
    assert first["prev_hash"] == ZERO_HASH
    assert second["prev_hash"] == _sha(lines[0])
    assert list(first)[:4] == ["ts", "run_id", "seq", "event"]
    assert b": " not in lines[0]  # compact


def test_batch_is_one_chain_segment(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path, key=None, run_id="r1") as log:
        log.append([_record(1), _record(2), _record(3)])
        head = log.head_hash
    assert verify(tmp_path / AUDIT_FILE, None).records == 3
    assert head == _sha(_lines(tmp_path / AUDIT_FILE)[-1])


def test_reopening_continues_the_chain(tmp_path: Path) -> None:
    _write(tmp_path, 3)
    path = _write(tmp_path, 3)
    assert verify(path, None).records == 6


def test_edited_byte_in_a_middle_line_is_detected(tmp_path: Path) -> None:
    path = _write(tmp_path, 6)
    lines = _lines(path)
    lines[2] = lines[2].replace(b'"s3"', b'"s9"')
    _put_lines(path, lines)
    report = verify(path, None)
    assert not report.ok
    # Line 3's own link is intact; the chain breaks at the next line, which names it.
    assert report.first_bad_line == 4
    assert report.reason is not None and "line 3 was edited" in report.reason


def test_line_edited_into_garbage_is_pinpointed(tmp_path: Path) -> None:
    path = _write(tmp_path, 6)
    lines = _lines(path)
    lines[2] = lines[2][:-1] + b"X"
    _put_lines(path, lines)
    report = verify(path, None)
    assert (report.ok, report.first_bad_line) == (False, 3)


def test_deleted_line_is_detected_where_it_was(tmp_path: Path) -> None:
    path = _write(tmp_path, 6)
    lines = _lines(path)
    del lines[3]
    _put_lines(path, lines)
    report = verify(path, None)
    assert (report.ok, report.first_bad_line) == (False, 4)


def test_deleted_first_line_is_detected(tmp_path: Path) -> None:
    path = _write(tmp_path, 3)
    _put_lines(path, _lines(path)[1:])
    report = verify(path, None)
    assert (report.ok, report.first_bad_line) == (False, 1)
    assert report.reason is not None and "start of the log" in report.reason


def test_swapped_lines_are_detected(tmp_path: Path) -> None:
    path = _write(tmp_path, 6)
    lines = _lines(path)
    lines[2], lines[3] = lines[3], lines[2]
    _put_lines(path, lines)
    report = verify(path, None)
    assert (report.ok, report.first_bad_line) == (False, 3)


def _rewrite_chain(path: Path, edit_index: int) -> None:
    """What an attacker without the key does: edit a line, recompute every link."""
    records = [json.loads(line) for line in _lines(path)]
    records[edit_index]["step"] = "forged"
    out, prev = [], ZERO_HASH
    for record in records:
        record["prev_hash"] = prev
        line = json.dumps(record, separators=(",", ":")).encode()
        out.append(line)
        prev = _sha(line)
    _put_lines(path, out)


def test_consistently_rewritten_chain_needs_the_key_to_be_caught(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, 5, key=KEY)
    assert verify(path, KEY).ok
    _rewrite_chain(path, 1)
    assert verify(path, None).ok  # the chain alone cannot tell
    report = verify(path, KEY)
    assert (report.ok, report.first_bad_line, report.keyed) == (False, 2, True)
    assert report.reason is not None and "hmac does not match" in report.reason


def test_wrong_key_fails_and_keyless_log_is_flagged(tmp_path: Path) -> None:
    keyed = _write(tmp_path / "a", 2, key=KEY)
    assert verify(keyed, b"other").first_bad_line == 1
    plain = _write(tmp_path / "b", 2)
    report = verify(plain, KEY)
    assert report.first_bad_line == 1
    assert report.reason is not None and "no hmac" in report.reason


def test_key_comes_from_runbook_audit_key() -> None:
    assert key_from_env({"RUNBOOK_AUDIT_KEY": "s3cret"}) == b"s3cret"
    assert key_from_env({"RUNBOOK_AUDIT_KEY": ""}) is None
    assert key_from_env({}) is None


def _assert_repaired(path: Path, *, torn_line: int, torn: bytes) -> None:
    """After a reopen: the repair record names the torn bytes, and all verifies."""
    report = verify(path, None)
    assert report.ok and report.truncated_line is None, report
    lines = _lines(path)
    repair = json.loads(lines[torn_line + torn.count(b"\n")])
    assert repair["event"] == REPAIRED_EVENT
    assert repair["torn_line"] == torn_line
    assert repair["torn_hash"] == _sha(torn)
    assert repair["prev_hash"] == _sha(lines[torn_line - 2])


def test_truncated_last_line_is_a_crash_then_repaired(tmp_path: Path) -> None:
    path = _write(tmp_path, 5)
    data = path.read_bytes()
    path.write_bytes(data[:-20])
    torn = data[:-20].split(b"\n")[-1]
    report = verify(path, None)
    assert (report.ok, report.truncated_line, report.records) == (True, 5, 4)
    assert report.head_hash == _sha(_lines(path)[3])
    _write(tmp_path, 2)  # the next run appends audit.repaired, then its records
    _assert_repaired(path, torn_line=5, torn=torn)
    assert verify(path, None).records == 4 + 1 + 2


def test_torn_line_with_newline_is_repaired(tmp_path: Path) -> None:
    path = _write(tmp_path, 3)
    with path.open("ab") as stream:
        stream.write(b'{"ts":"x","run_id\n')
    assert verify(path, None).truncated_line == 4
    _write(tmp_path, 1)
    _assert_repaired(path, torn_line=4, torn=b'{"ts":"x","run_id')


def test_several_torn_lines_are_repaired_together(tmp_path: Path) -> None:
    path = _write(tmp_path, 3)
    with path.open("ab") as stream:
        stream.write(b'{"half\n{"another half')
    assert verify(path, None).truncated_line == 4
    _write(tmp_path, 1)
    _assert_repaired(path, torn_line=4, torn=b'{"half\n{"another half')


def test_log_that_is_only_a_torn_line_is_repaired(tmp_path: Path) -> None:
    path = tmp_path / AUDIT_FILE
    path.write_bytes(b'{"ts":')
    assert verify(path, None).truncated_line == 1
    _write(tmp_path, 1)
    assert json.loads(_lines(path)[1])["prev_hash"] == ZERO_HASH
    assert verify(path, None).records == 2


def test_unrepaired_garbage_in_the_middle_is_an_edit(tmp_path: Path) -> None:
    path = _write(tmp_path, 4)
    lines = _lines(path)
    lines.insert(2, b"not json")
    _put_lines(path, lines)
    assert verify(path, None).first_bad_line == 3


HALF_THEN_WAIT = """
import sys, time
from pathlib import Path
from runbook_engine.record.audit import AuditLog
state = Path(sys.argv[1])
log = AuditLog.open(state, key=None, run_id="child")
for seq in range(1, 11):
    log.append([{"ts": "t", "run_id": "child", "seq": seq, "event": "step.started"}])
with open(state / "audit.jsonl", "ab") as stream:
    stream.write(b'{"ts":"t","run_id":"child","seq":11,"event":"step.fini')
print("ready", flush=True)
time.sleep(60)
"""


def test_child_killed_after_half_a_record_leaves_a_repairable_log(
    tmp_path: Path,
) -> None:
    child = _run_child(HALF_THEN_WAIT, tmp_path)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=10)
    path = tmp_path / AUDIT_FILE
    report = verify(path, None)
    assert (report.ok, report.truncated_line, report.records) == (True, 11, 10)
    _write(tmp_path, 1)
    torn = b'{"ts":"t","run_id":"child","seq":11,"event":"step.fini'
    _assert_repaired(path, torn_line=11, torn=torn)


def test_kill_9_at_random_moments_never_breaks_the_chain(tmp_path: Path) -> None:
    rng = random.Random(7)
    for attempt in range(6):
        state = tmp_path / f"s{attempt}"
        child = _run_child(APPENDER, state, "child", 100_000, 4 * 1024 * 1024)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.4))
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=10)
        path = state / AUDIT_FILE
        report = verify(path, None)
        assert report.ok, report
        _write(state, 1)
        after = verify(path, None)
        assert after.ok and after.truncated_line is None, after


CONCURRENT_COUNT = 200


def test_two_processes_appending_make_one_linear_chain(tmp_path: Path) -> None:
    children = [
        _run_child(
            APPENDER, tmp_path, run_id, CONCURRENT_COUNT, 100, "wait", stdin=PIPE
        )
        for run_id in ("A", "B")
    ]
    for child in children:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    path = tmp_path / AUDIT_FILE
    report = verify(path, None)
    assert report.ok and report.records == 2 * CONCURRENT_COUNT, report
    runs = [line.record["run_id"] for line in read_records(path) if line.record]
    for run_id in ("A", "B"):
        seqs = [r["seq"] for r in run_records(path, run_id)]
        assert seqs == list(range(1, CONCURRENT_COUNT + 1))
    switches = sum(1 for a, b in itertools.pairwise(runs) if a != b)
    assert switches >= 2, switches  # A, then B, then A again: really concurrent


def test_append_after_another_writer_reads_the_new_tail(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path, key=None, run_id="r1") as mine:
        mine.append([_record(1)])
        child = _run_child(APPENDER, tmp_path, "other", 3, 10)
        child.communicate(timeout=60)
        mine.append([_record(2)])
    report = verify(tmp_path / AUDIT_FILE, None)
    assert report.ok and report.records == 5, report


def test_threads_sharing_one_log_make_one_chain(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path, key=None, run_id="r1") as log:

        def worker(host: str) -> None:
            for seq in range(50):
                log.append([_record(seq, host=host)])

        threads = [threading.Thread(target=worker, args=(f"h{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert verify(tmp_path / AUDIT_FILE, None).records == 200


def test_state_dir_and_log_are_private_under_umask_000(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        _write(tmp_path / "state", 1)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state" / AUDIT_FILE).stat().st_mode) == 0o600


def test_symlinked_audit_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.jsonl"
    target.write_bytes(b"")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / AUDIT_FILE).symlink_to(target)
    with pytest.raises(StateDirError) as caught:
        AuditLog.open(state, key=None, run_id="r1")
    assert caught.value.exit_code == ExitCode.NO_GO
    assert str(state / AUDIT_FILE) in str(caught.value)
    assert "symlink" in str(caught.value)
    assert target.read_bytes() == b""
    with pytest.raises(StateDirError):
        list(read_records(state / AUDIT_FILE))


FIFO_OPEN = """
import sys
from pathlib import Path
from runbook_engine.record.audit import AuditLog
from runbook_engine.errors import StateDirError
try:
    AuditLog.open(Path(sys.argv[1]), key=None, run_id="r1")
except StateDirError as exc:
    print(exc.exit_code, exc)
"""


def test_fifo_audit_file_is_refused_without_hanging(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / AUDIT_FILE)
    child = _run_child(FIFO_OPEN, tmp_path)
    out, err = child.communicate(timeout=20)
    assert out.startswith("4 ") and "FIFO" in out, (out, err)


def test_audit_file_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("needs root to chown a file to another user")  # pragma: no cover
    (tmp_path / AUDIT_FILE).write_bytes(b"")
    os.chown(tmp_path / AUDIT_FILE, 65534, 65534)
    with pytest.raises(StateDirError, match="owned by uid 65534"):
        AuditLog.open(tmp_path, key=None, run_id="r1")


FILE_TOO_BIG = """
import resource, signal, sys
from pathlib import Path
from runbook_engine.record.audit import AuditLog
from runbook_engine.errors import AuditError, StateDirError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
log = AuditLog.open(Path(sys.argv[1]), key=None, run_id="r1")
if sys.argv[2] == "later":
    log.append([{"ts": "t", "run_id": "r1", "seq": 1, "event": "run.started"}])
try:
    log.append([{"ts": "t", "run_id": "r1", "seq": 2, "event": "e", "x": "y" * 8000}])
except (AuditError, StateDirError) as exc:
    print(type(exc).__name__, exc.exit_code, exc)
"""


@pytest.mark.parametrize(
    ("when", "error", "code"),
    [("first", "StateDirError", 4), ("later", "AuditError", 3)],
)
def test_write_failure_names_path_and_cause(
    tmp_path: Path, when: str, error: str, code: int
) -> None:
    child = _run_child(FILE_TOO_BIG, tmp_path, when)
    out, err = child.communicate(timeout=20)
    assert out.startswith(f"{error} {code} "), (out, err)
    assert str(tmp_path / AUDIT_FILE) in out
    assert "too large" in out  # EFBIG, as a full disk would give ENOSPC


def test_log_replaced_mid_run_stops_the_run(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path, key=None, run_id="r1") as log:
        log.append([_record(1)])
        (tmp_path / AUDIT_FILE).rename(tmp_path / "moved")
        (tmp_path / AUDIT_FILE).write_bytes(b"")
        with pytest.raises(AuditError, match="replaced or removed"):
            log.append([_record(2)])


def test_records_are_valid_utf8_whatever_the_text(tmp_path: Path) -> None:
    odd = b"caf\xc3\xa9 \xff\xfe".decode("utf-8", "surrogateescape")
    with AuditLog.open(tmp_path, key=KEY, run_id="r1") as log:
        log.append([_record(1, output=odd, raw=b"\x00\xffbin", note="ünï ✓\n")])
    data = (tmp_path / AUDIT_FILE).read_bytes()
    data.decode("utf-8")  # strict
    assert data.count(b"\n") == 1
    record = json.loads(data)
    assert record["note"] == "ünï ✓\n" and "\ufffd" in record["raw"]
    assert verify(tmp_path / AUDIT_FILE, KEY).ok


def test_caller_cannot_supply_chain_fields(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path, key=None, run_id="r1") as log:
        with pytest.raises(ValueError, match="prev_hash"):
            log.append([_record(1, prev_hash="0" * 64)])
        log.append([_record(2)])
    assert verify(tmp_path / AUDIT_FILE, None).records == 1


def test_list_runs_and_run_records(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path, key=None, run_id="a") as log:
        started = {"runbook": "deploy.yaml", "operator": "alice@ctl"}
        log.append([_record(1, "a", **started) | {"event": "run.started"}])
        log.append([_record(1, "b", runbook="db.yaml", operator="bob", event="x")])
        log.append(
            [
                _record(2, "a", event="step.finished"),
                _record(9, "a") | {"event": "run.finished", "status": "succeeded"},
            ]
        )
        log.append([_record(3, "c", runbook="c.yaml", operator="carol")])
        log.append([_record(4, "c") | {"event": "run.started", "runbook": "c.yaml"}])
    path = tmp_path / AUDIT_FILE
    runs = list_runs(path)
    assert [run.run_id for run in runs] == ["a", "c"]
    assert runs[0].status == "succeeded" and runs[0].duration == 8.0
    assert (runs[0].runbook, runs[0].operator) == ("deploy.yaml", "alice@ctl")
    assert runs[1].status is None and runs[1].duration is None
    assert [r["seq"] for r in run_records(path, "a")] == [1, 2, 9]


def test_append_rate_with_fsync(tmp_path: Path) -> None:
    """Each append() is durable (fsync). Reported with -s; the floor is loose."""
    count = 300
    with AuditLog.open(tmp_path, key=KEY, run_id="r1") as log:
        start = time.perf_counter()
        for seq in range(count):
            log.append([_record(seq, output="x" * 200)])
        single = count / (time.perf_counter() - start)
        start = time.perf_counter()
        for seq in range(count // 10):
            log.append([_record(seq * 10 + i, output="x" * 200) for i in range(10)])
        batched = count / (time.perf_counter() - start)
    print(f"\naudit appends: {single:.0f}/s single, {batched:.0f} records/s batched")
    assert single > 20
    assert verify(tmp_path / AUDIT_FILE, KEY).records == 2 * count


def _time_appends(state: Path, prefill: int) -> float:
    with AuditLog.open(state, key=None, run_id="r1") as log:
        if prefill:
            log.append([_record(i, output="x" * 10_000) for i in range(prefill)])
        start = time.perf_counter()
        for seq in range(50):
            log.append([_record(seq)])
        return time.perf_counter() - start


def test_append_cost_does_not_grow_with_the_log(tmp_path: Path) -> None:
    small = _time_appends(tmp_path / "small", 0)
    big = _time_appends(tmp_path / "big", 5000)  # a 50 MB log
    # Reading 50 MB per append would make this seconds; the tail cache keeps it flat.
    assert big < 3 * small + 0.5, (small, big)
