"""Run reports (json, junit, markdown, html) built from the records the engine emits:
real event dataclasses turned into records the way the collector does, and a run
written to and read back from a real audit log."""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from runbook_engine.record import events as ev
from runbook_engine.record.audit import AUDIT_FILE, AuditLog, run_records
from runbook_engine.record.auditsink import AuditSink
from runbook_engine.record.reports import FORMATS, render, write
from runbook_engine.secrets import Masker
from tests.support.gfm import Page
from tests.support.gfm import render as render_markdown

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schemas" / "report.schema.json").read_text())
SECRET = "hunter2-very-secret"


def record(event: ev.Event) -> dict[str, Any]:
    return {"event": event.name, **event.record()}


class Run:
    """Emits the events of a run, with step times relative to ``t0``."""

    def __init__(self) -> None:
        self.t0 = time.time() - 60
        self.events: list[ev.Event] = []

    def step(
        self,
        host: str,
        step: str,
        status: str,
        start_ms: int,
        duration_ms: int,
        *,
        phase: str = "steps",
        rc: int | None = 0,
        command: str | None = None,
        message: str | None = None,
        stdout: str = "",
        stderr: str = "",
        attempt: int = 1,
    ) -> None:
        self.events.append(
            ev.StepStarted(
                step=step, host=host, phase=phase, action="run", command=command
            )
        )
        self.events.append(
            ev.StepFinished(
                step=step,
                host=host,
                phase=phase,
                status=ev.Status(status),
                rc=rc,
                attempt=attempt,
                duration_ms=duration_ms,
                command=command,
                message=message,
                stdout_tail=stdout,
                stderr_tail=stderr,
                started_at=self.t0 + start_ms / 1000,
            )
        )

    def undo(
        self, host: str, step: str, status: str, start_ms: int, duration_ms: int
    ) -> None:
        self.events.append(ev.UndoStarted(step=step, host=host, command=None))
        self.events.append(
            ev.UndoFinished(
                step=step,
                host=host,
                status=ev.Status(status),
                rc=0 if status == "ok" else 1,
                duration_ms=duration_ms,
                message=None if status == "ok" else "undo failed: rc=1",
                started_at=self.t0 + start_ms / 1000,
            )
        )

    def records(self) -> list[dict[str, Any]]:
        return [record(e) for e in self.events]


def rolled_back_run() -> Run:
    """Two hosts; `restart` fails on web2 after a retry; both hosts roll back, and
    one undo fails (so a human must look)."""
    run = Run()
    run.events += [
        ev.RunStarted(
            runbook="runbooks/release.yaml",
            runbook_name="release",
            runbook_sha256="ab" * 32,
            git_commit=None,
            params={"version": "1.1.0", "db_password": "***"},
            operator="alice@ci",
            command_line="runbook run runbooks/release.yaml -e version=1.1.0",
            hosts=["web1", "web2"],
        ),
        ev.HostConnected(host="web1", facts={"os": "debian"}),
        ev.HostConnected(host="web2", facts={"os": "debian"}),
    ]
    for host in ("web1", "web2"):
        run.step(host, "disk", "ok", 0, 30, phase="preconditions", command="df /srv")
    checks = [
        {
            "step": "disk",
            "name": "Disk has room",
            "host": h,
            "status": "ok",
            "message": "",
        }
        for h in ("web1", "web2")
    ]
    run.events.append(ev.GoNoGo(go=True, checks=checks))
    run.events.append(ev.BatchStarted(batch=1, hosts=["web1", "web2"]))
    run.events.append(
        ev.Approval(
            step="confirm",
            host="web1",
            question="Deploy 1.1.0?",
            answer="approved",
            approved=True,
            operator="alice@ci",
            via="--yes",
        )
    )
    for host in ("web1", "web2"):
        run.step(host, "upload", "changed", 100, 1000, command="tar xzf app.tgz")
        run.step(
            host, "cleanup_old", "skipped", 1100, 0, rc=None, message="when is false"
        )
    run.step("web1", "restart", "changed", 1200, 500, command="systemctl restart app")
    run.events.append(
        ev.StepRetry(
            step="restart", host="web2", attempt=1, cause="rc=1", next_delay_ms=200
        )
    )
    run.step(
        "web2",
        "restart",
        "failed",
        1200,
        2000,
        rc=3,
        command="systemctl restart app",
        message="exit code 3",
        stderr="Job for app.service failed | see `journalctl` ```\n<b>boom</b>",
        attempt=2,
    )
    run.events.append(
        ev.RollbackStarted(
            hosts=["web1", "web2"], reason="restart failed on web2", scope="all"
        )
    )
    run.undo("web1", "upload", "ok", 3300, 200)
    run.undo("web2", "upload", "failed", 3300, 250)
    attention = [{"host": "web2", "step": "upload", "what": "undo failed: rc=1"}]
    run.events += [
        ev.RollbackFinished(ok=False, needs_attention=attention),
        ev.RunFinished(
            status=ev.RunStatus.ROLLBACK_FAILED,
            duration_ms=3600,
            hosts={"web1": "rolled_back", "web2": "rollback_failed"},
            message="restart failed on web2; the rollback is incomplete",
        ),
    ]
    return run


# -- json -----------------------------------------------------------------------


def test_json_report_matches_its_schema_and_holds_the_whole_run(tmp_path: Path) -> None:
    path = tmp_path / "out" / "report.json"
    write("json", path, rolled_back_run().records(), chain_head="c" * 64, run_id="r-1")
    data = json.loads(path.read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert data["schema_version"] == 1
    assert data["run"]["run_id"] == "r-1"
    assert data["run"]["status"] == "rollback_failed"
    assert data["chain_head"] == "c" * 64
    web2 = next(h for h in data["hosts"] if h["name"] == "web2")
    assert web2["status"] == "rollback_failed"
    restart = next(s for s in web2["steps"] if s["step"] == "restart")
    assert restart["status"] == "failed"
    assert restart["attempts"] == 2
    assert restart["retries"] == [{"attempt": 1, "cause": "rc=1", "next_delay_ms": 200}]
    assert restart["start_ms"] == 1200
    assert restart["duration_ms"] == 2000
    undo = next(s for s in web2["steps"] if s["kind"] == "undo")
    assert (undo["step"], undo["status"], undo["start_ms"]) == (
        "upload",
        "failed",
        3300,
    )
    assert data["rollback"]["ok"] is False
    assert data["rollback"]["needs_attention"][0]["what"] == "undo failed: rc=1"
    assert data["approvals"][0]["approved"] is True
    assert [c["host"] for c in data["go_no_go"]["checks"]] == ["web1", "web2"]
    assert any("web2 upload: undo failed" in item for item in data["needs_human"])


def _properties(node: Any, where: str) -> list[str]:
    """Paths of schema properties that lack a description."""
    missing: list[str] = []
    if isinstance(node, dict):
        for name, sub in (node.get("properties") or {}).items():
            if not isinstance(sub, dict) or not sub.get("description"):
                missing.append(f"{where}.{name}")
        for key, sub in node.items():
            missing += _properties(sub, f"{where}.{key}")
    elif isinstance(node, list):
        for index, sub in enumerate(node):
            missing += _properties(sub, f"{where}[{index}]")
    return missing


def test_report_schema_is_valid_draft_2020_12_with_a_description_everywhere() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert _properties(SCHEMA, "$") == []


def test_packaged_report_schema_is_the_top_level_one() -> None:
    packaged = ROOT / "runbook_engine" / "schemas" / "report.schema.json"
    assert (
        packaged.read_bytes() == (ROOT / "schemas" / "report.schema.json").read_bytes()
    )


# -- junit ----------------------------------------------------------------------


def test_junit_has_one_testcase_per_host_and_step_with_failure_output() -> None:
    root = ET.fromstring(render("junit", rolled_back_run().records()))
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"web1", "web2"}
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    assert ("web1", "steps/restart") in cases
    assert ("web2", "preconditions/disk") in cases
    failure = cases[("web2", "steps/restart")].find("failure")
    assert failure is not None
    assert failure.get("message") == "exit code 3"
    assert "Job for app.service failed" in (failure.text or "")
    assert "$ systemctl restart app" in (failure.text or "")
    skipped = cases[("web1", "steps/cleanup_old")].find("skipped")
    assert skipped is not None and skipped.get("message") == "when is false"
    assert cases[("web2", "rollback/undo upload")].find("failure") is not None
    assert suites["web2"].get("failures") == "2"
    assert root.get("tests") == str(len(cases))
    assert cases[("web2", "steps/restart")].get("time") == "2.000"


def test_junit_stays_valid_xml_with_control_characters_in_output() -> None:
    run = Run()
    run.step(
        "local", "noisy", "failed", 0, 5, rc=1, stderr="\x1b[31mred\x1b[0m \x00 end"
    )
    text = render("junit", run.records())
    failure = ET.fromstring(text).find("testsuite/testcase/failure")
    assert failure is not None
    assert "\\x1b[31mred" in (failure.text or "")


# -- markdown --------------------------------------------------------------------


def test_markdown_summary_shows_status_hosts_steps_and_what_needs_a_human() -> None:
    text = render("markdown", rolled_back_run().records(), chain_head="d" * 64)
    shown = Page(text)
    first = Page(text.splitlines()[0]).text
    assert text.startswith("## ") and "runbook release: rollback_failed" in first
    assert shown.row("web2") == ["web2", "rollback_failed", "1", "1", "1", "1"]
    assert "### Go / no-go: GO" in text
    assert "### Rollback: INCOMPLETE" in text
    assert "### Needs a human" in text
    assert "web2 upload: undo failed: rc=1" in shown.items
    assert f"<code>{'d' * 64}</code>" in text
    # output goes in a fence longer than the backticks inside it, where HTML is
    # shown as text; nowhere else does untrusted HTML appear
    assert "````text" in text
    outside = re.sub(r"^(`{3,})text\n.*?^\1$", "", text, flags=re.S | re.M)
    assert "<b>boom</b>" in text and "<b>boom</b>" not in outside
    assert "<b>boom</b>" in shown.text and "<b>" not in render_markdown(outside)


def test_markdown_cells_show_untrusted_text_as_written() -> None:
    run = Run()
    message = "a | b <i>x</i> *y* _z_ [l](http://e) \\. `t`"
    run.step("local", "x", "failed", 0, 5, rc=1, message=message)
    shown = Page(render("markdown", run.records()))
    (t, r), *_ = [
        (t, r)
        for t, table in enumerate(shown.tables)
        for r, row in enumerate(table)
        if "x" in row[:3]
    ]
    assert shown.tables[t][r][-1] == message
    assert [cell for cell in shown.tags[t][r] if cell] == [["code"]]  # the step id


# -- html (structure; the browser test looks at it rendered) ---------------------


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        self.refs += [
            v or "" for k, v in attrs if k in ("src", "href", "srcset", "action")
        ]


def test_html_is_self_contained_and_escapes_output() -> None:
    run = rolled_back_run()
    run.step(
        "web1",
        "evil",
        "failed",
        3000,
        5,
        stderr='<script>alert(1)</script>"><img src=x>',
    )
    text = render("html", run.records())
    parser = _Refs()
    parser.feed(text)
    assert parser.scripts == 1  # ours, inline
    assert all(ref.startswith("#") for ref in parser.refs), parser.refs
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert "<script>alert(1)" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x&gt;" in text
    assert "not recorded" in text


# -- past runs, partial runs -----------------------------------------------------


def test_report_of_a_past_run_read_back_from_the_audit_log(tmp_path: Path) -> None:
    state = tmp_path / "state"
    run = rolled_back_run()
    run.events[0] = ev.RunStarted(
        runbook="runbooks/release.yaml",
        runbook_name="release",
        runbook_sha256="ab" * 32,
        git_commit=None,
        params={"version": "1.1.0", "token": SECRET},
        operator="alice@ci",
        command_line=f"runbook run release.yaml -e token={SECRET}",
        hosts=["web1", "web2"],
    )
    with AuditLog.open(state, key=None, run_id="run-42") as log:
        sink = ev.MultiSink(AuditSink(log, run_id="run-42"), masker=Masker([SECRET]))
        for event in run.events:
            sink.emit(event)
            sink.barrier()
        head = log.head_hash
    records = run_records(state / AUDIT_FILE, "run-42")
    assert records and all("ts" in r and "prev_hash" in r for r in records)
    for kind in FORMATS:
        write(kind, tmp_path / f"report.{kind}", records, chain_head=head)
        assert SECRET not in (tmp_path / f"report.{kind}").read_text()
    data = json.loads((tmp_path / "report.json").read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert data["run"]["run_id"] == "run-42"
    assert data["run"]["started_at"] == records[0]["ts"]
    assert data["chain_head"] == head
    assert data["run"]["params"]["token"] == "***"
    assert head in (tmp_path / "report.html").read_text()
    restart = next(
        s
        for h in data["hosts"]
        for s in h["steps"]
        if (s["host"], s["step"]) == ("web2", "restart")
    )
    assert restart["status"] == "failed" and restart["duration_ms"] == 2000


def test_a_run_killed_mid_step_reports_the_step_as_unfinished() -> None:
    run = Run()
    run.events.append(
        ev.RunStarted(
            runbook="rb.yaml",
            runbook_name="rb",
            runbook_sha256="0" * 64,
            git_commit=None,
            params={},
            operator="bob",
            command_line="runbook run rb.yaml",
            hosts=["local"],
        )
    )
    run.step("local", "first", "ok", 0, 100)
    run.events.append(
        ev.StepStarted(
            step="second",
            host="local",
            phase="steps",
            action="run",
            command="sleep 100",
        )
    )
    data = json.loads(render("json", run.records()))
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert data["run"]["status"] == "unfinished"
    steps = data["hosts"][0]["steps"]
    assert [(s["step"], s["status"]) for s in steps] == [
        ("first", "ok"),
        ("second", "unfinished"),
    ]
    assert any("never finished" in item for item in data["needs_human"])


def test_steps_without_a_start_time_follow_the_previous_step_on_their_host() -> None:
    records = rolled_back_run().records()
    skipped = [
        r
        for r in records
        if r.get("step") == "cleanup_old" and r["event"] == "step.finished"
    ]
    for r in skipped:
        r["started_at"] = 0.0
    data = json.loads(render("json", records))
    web1 = {s["step"]: s for s in data["hosts"][0]["steps"] if s["kind"] == "step"}
    assert web1["cleanup_old"]["start_ms"] == web1["upload"]["start_ms"] + 1000


def test_unknown_report_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown report format 'pdf'"):
        write("pdf", tmp_path / "x.pdf", [])
    assert not (tmp_path / "x.pdf").exists()


def test_an_empty_record_list_still_gives_a_report_in_every_format() -> None:
    for kind in FORMATS:
        assert render(kind, []).strip()
    assert re.search(r'"status": "unfinished"', render("json", []))
