"""The ``junit`` report: one testsuite per host, one testcase per step (and per undo)
on that host, so CI systems show a run as test results.

``classname`` is the host and ``name`` is ``phase/step`` (``rollback/undo <step>``
for an undo). Failed and unknown steps carry a ``<failure>`` with the command, the
message and the output tail; skipped steps a ``<skipped>``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .report_model import HostReport, Report, StepRun

# characters XML 1.0 cannot hold at all (control characters from command output)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.3f}"


def _output(run: StepRun) -> str:
    parts = []
    if run.command:
        parts.append(f"$ {run.command}")
    if run.message:
        parts.append(run.message)
    if run.rc is not None:
        parts.append(f"rc: {run.rc}")
    if run.stdout_tail:
        parts.append(f"--- stdout (tail) ---\n{run.stdout_tail}")
    if run.stderr_tail:
        parts.append(f"--- stderr (tail) ---\n{run.stderr_tail}")
    return _clean("\n".join(parts))


def _testcase(suite: ET.Element, run: StepRun) -> None:
    name = (
        f"rollback/undo {run.step}" if run.kind == "undo" else f"{run.phase}/{run.step}"
    )
    case = ET.SubElement(
        suite,
        "testcase",
        classname=_clean(run.host),
        name=_clean(name),
        time=_seconds(run.duration_ms),
    )
    if run.failed:
        summary = run.message or f"{run.status}" + (f" (rc={run.rc})" if run.rc else "")
        failure = ET.SubElement(
            case, "failure", message=_clean(summary), type=run.status
        )
        failure.text = _output(run)
    elif run.status == "skipped":
        ET.SubElement(case, "skipped", message=_clean(run.message or "skipped"))
    elif run.stdout_tail or run.stderr_tail:
        ET.SubElement(case, "system-out").text = _output(run)


def _suite(parent: ET.Element, host: HostReport, timestamp: str | None) -> None:
    steps = host.steps
    suite = ET.SubElement(
        parent,
        "testsuite",
        name=_clean(host.name),
        tests=str(len(steps)),
        failures=str(sum(1 for s in steps if s.failed)),
        errors="0",
        skipped=str(sum(1 for s in steps if s.status == "skipped")),
        time=_seconds(sum(s.duration_ms for s in steps)),
    )
    if timestamp:
        suite.set("timestamp", timestamp.removesuffix("Z"))
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="host.status", value=_clean(host.status))
    for run in steps:
        _testcase(suite, run)


def render_junit(report: Report) -> str:
    run = report.run
    steps = report.all_steps()
    root = ET.Element(
        "testsuites",
        name=_clean(f"runbook {run.runbook_name}: {run.status}"),
        tests=str(len(steps)),
        failures=str(sum(1 for s in steps if s.failed)),
        errors="0",
        skipped=str(sum(1 for s in steps if s.status == "skipped")),
        time=_seconds(run.duration_ms or report.span_ms),
    )
    for host in report.hosts:
        _suite(root, host, run.started_at)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'
