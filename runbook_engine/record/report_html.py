"""The ``html`` report: one self-contained page (inline CSS and JS, no network, no
external assets; a Content-Security-Policy forbids any fetch) with a timeline per
host, the go/no-go table, approvals, the rollback, and the audit chain head.

Every bar is laid out here (position and width in percent of the run), so the page
reads without scripts; the inline script only adds status filters, opens the
details of failed steps, and jumps to a step's details when its bar is clicked.
Everything from the run is untrusted and goes through ``html.escape``.
"""

from __future__ import annotations

import html
import json
import re
from typing import TYPE_CHECKING

from ..units import format_duration
from .report_assets import PAGE_CSS, PAGE_JS

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .events import DrillReport, GoNoGo
    from .report_model import HostReport, Report, Rollback, StepRun

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline';"
    " img-src data:; base-uri 'none'; form-action 'none'"
)
_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _token(value: str) -> str:
    """A status as a CSS class token (a tampered log cannot inject attributes)."""
    return re.sub(r"[^a-z0-9_-]", "-", value.lower()) or "unknown"


def _ms(ms: int | None) -> str:
    return "-" if ms is None else format_duration(ms / 1000)


def _pct(ms: int, span: int) -> float:
    return round(min(100.0, max(0.0, 100.0 * ms / span)), 3)


def _badge(status: str, text: str | None = None) -> str:
    shown = text or status.replace("_", " ")
    return f'<span class="badge status-{_token(status)}">{_e(shown)}</span>'


def _table(
    header: Iterable[str], rows: Iterable[tuple[str, list[str]]], ident: str
) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        f'<tr class="{cls}">' + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"
        for cls, cells in rows
    )
    return (
        f'<table id="{ident}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


# -- header ------------------------------------------------------------------------


def _param(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _header(report: Report) -> str:
    run = report.run
    facts = [
        ("run id", f"<code>{_e(run.run_id or '-')}</code>"),
        ("mode", _e(run.mode)),
        ("operator", _e(run.operator or "-")),
        ("started", _time(run.started_at)),
        ("duration", _e(_ms(run.duration_ms))),
        ("runbook", f"<code>{_e(run.runbook or '-')}</code>"),
        ("sha256", f"<code>{_e(run.runbook_sha256 or '-')}</code>"),
    ]
    if run.git_commit:
        facts.append(("git commit", f"<code>{_e(run.git_commit)}</code>"))
    if run.params:
        params = ", ".join(f"{k}={_param(v)}" for k, v in run.params.items())
        facts.append(("params", f"<code>{_e(params)}</code>"))
    items = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in facts)
    message = f'<p class="message">{_e(run.message)}</p>' if run.message else ""
    return (
        f'<header class="run status-{_token(run.status)}">'
        f'<h1>runbook <span class="name">{_e(run.runbook_name or "?")}</span> '
        f"{_badge(run.status, run.status.replace('_', ' '))}</h1>"
        f'{message}<dl class="facts">{items}</dl></header>'
    )


def _time(stamp: str | None) -> str:
    if not stamp:
        return "-"
    return f'<time datetime="{_e(stamp)}">{_e(stamp)}</time>'


def _needs_human(report: Report) -> str:
    if not report.needs_human:
        return ""
    items = "".join(f"<li>{_e(item)}</li>" for item in report.needs_human)
    return f'<section id="needs-human"><h2>Needs a human</h2><ul>{items}</ul></section>'


# -- timeline ----------------------------------------------------------------------


def _axis(span: int) -> str:
    ticks = "".join(
        f'<span class="tick" style="left:{p * 100:g}%">{_e(_ms(round(span * p)))}'
        "</span>"
        for p in _TICKS
    )
    return (
        '<div class="row axis"><div class="label"></div>'
        f'<div class="track">{ticks}</div></div>'
    )


def _bar(run: StepRun, index: int, span: int) -> str:
    start = run.start_ms or 0
    left, width = _pct(start, span), _pct(run.duration_ms, span)
    status = _token(run.status)
    text = f"{run.status} · {_ms(run.duration_ms)}"
    if run.attempts > 1:
        text += f" · {run.attempts} attempts"
    side = (
        f"right:calc({100 - left:g}% + 6px)"
        if left + width > 70
        else f"left:calc({left + width:g}% + 6px)"
    )
    title = f"{run.host} {run.label}: {text}"
    return (
        f'<div class="row step-row kind-{run.kind} status-{status}"'
        f' data-status="{status}">'
        f'<div class="label" title="{_e(run.label)}">{_e(run.label)}</div>'
        f'<div class="track"><a class="bar kind-{run.kind} status-{status}"'
        f' href="#step-{index}" data-step="{index}" title="{_e(title)}"'
        f' style="left:{left:g}%;width:{width:g}%"></a>'
        f'<span class="bar-text" style="{side}">{_e(text)}</span></div></div>'
    )


def _band(rollback: Rollback | None, span: int) -> str:
    if rollback is None or rollback.start_ms is None:
        return ""
    end = rollback.end_ms if rollback.end_ms is not None else span
    left, width = (
        _pct(rollback.start_ms, span),
        _pct(max(0, end - rollback.start_ms), span),
    )
    return (
        '<div class="rollback-band"'
        f' style="--left:{left / 100:g};--width:{width / 100:g}">'
        "<span>rollback</span></div>"
    )


def _host_lane(host: HostReport, indexes: dict[int, int], report: Report) -> str:
    rows = "".join(_bar(run, indexes[id(run)], report.span_ms) for run in host.steps)
    rollback = report.rollback
    band = (
        _band(rollback, report.span_ms)
        if rollback and host.name in rollback.hosts
        else ""
    )
    facts = ", ".join(f"{k} {v}" for k, v in host.facts.items())
    return (
        f'<section class="host" data-host="{_e(host.name)}">'
        f'<h3><span class="host-name">{_e(host.name)}</span> {_badge(host.status)}'
        f" <small>{_e(facts)}</small></h3>"
        f'<div class="lanes">{band}{rows or "<p>no steps ran</p>"}</div></section>'
    )


def _timeline(report: Report, indexes: dict[int, int]) -> str:
    lanes = "".join(_host_lane(host, indexes, report) for host in report.hosts)
    return (
        f'<section id="timeline"><h2>Timeline</h2><div id="filters"></div>'
        f"{_axis(report.span_ms)}{lanes or '<p>no host ran a step</p>'}</section>"
    )


# -- details and tables ------------------------------------------------------------


def _step_details(run: StepRun, index: int) -> str:
    parts = []
    if run.command:
        parts.append(f'<pre class="command">$ {_e(run.command)}</pre>')
    if run.message:
        parts.append(f'<p class="message">{_e(run.message)}</p>')
    meta = f"rc {run.rc if run.rc is not None else '-'}, attempt(s) {run.attempts}"
    if run.http_status is not None:
        meta += f", HTTP {run.http_status}"
    parts.append(f"<p>{_e(meta)}</p>")
    parts += [
        f"<p>retry after attempt {r.attempt}: {_e(r.cause)}</p>" for r in run.retries
    ]
    for name, tail in (("stdout", run.stdout_tail), ("stderr", run.stderr_tail)):
        if tail:
            parts.append(f'<h4>{name} (tail)</h4><pre class="{name}">{_e(tail)}</pre>')
    status = _token(run.status)
    return (
        f'<details id="step-{index}" class="step status-{status}"'
        f' data-status="{status}">'
        f"<summary>{_e(run.host)} <b>{_e(run.label)}</b> {_badge(run.status)}"
        f" {_e(_ms(run.duration_ms))}</summary>{''.join(parts)}</details>"
    )


def _details(runs: list[StepRun]) -> str:
    body = "".join(_step_details(run, i) for i, run in enumerate(runs))
    return f'<section id="details"><h2>Step details</h2>{body}</section>'


def _go_no_go(gate: GoNoGo | None) -> str:
    if gate is None:
        return ""
    rows = [
        (
            f"status-{_token(c.status)}",
            [_e(c.name), _e(c.host), _badge(c.status), _e(c.message)],
        )
        for c in gate.checks
    ]
    verdict = _badge("ok" if gate.go else "failed", "GO" if gate.go else "NO-GO")
    table = _table(["check", "host", "status", "message"], rows, "go-no-go-table")
    return f'<section id="go-no-go"><h2>Go / no-go {verdict}</h2>{table}</section>'


def _approvals(report: Report) -> str:
    if not report.approvals:
        return ""
    rows = [
        (
            "approved" if a.approved else "refused",
            [
                f"<code>{_e(a.step)}</code>",
                _e(a.question),
                _badge(
                    "ok" if a.approved else "failed",
                    "approved" if a.approved else "refused",
                ),
                _e(a.operator),
                _e(a.via),
            ],
        )
        for a in report.approvals
    ]
    table = _table(["step", "question", "answer", "by", "via"], rows, "approvals-table")
    return f'<section id="approvals"><h2>Approvals</h2>{table}</section>'


def _rollback(rollback: Rollback | None) -> str:
    if rollback is None:
        return ""
    if rollback.skipped:
        state = _badge("unfinished", "skipped")
    elif not rollback.finished:
        state = _badge("unfinished", "never finished")
    else:
        state = _badge(
            "ok" if rollback.ok else "failed",
            "complete" if rollback.ok else "INCOMPLETE",
        )
    items = "".join(
        f"<li>{_e(a.host)} <code>{_e(a.step)}</code>: {_e(a.what)}</li>"
        for a in rollback.needs_attention
    )
    return (
        f'<section id="rollback"><h2>Rollback {state}</h2>'
        f"<p>reason: {_e(rollback.reason or '-')}; scope: {_e(rollback.scope or '-')};"
        f" hosts: {_e(', '.join(rollback.hosts) or '-')}</p>"
        f"{f'<ul>{items}</ul>' if items else ''}</section>"
    )


def _drill(drill: DrillReport | None) -> str:
    if drill is None:
        return ""
    verdict = _badge(
        "ok" if drill.passed else "failed", "PASS" if drill.passed else "FAIL"
    )
    rows = [
        (
            f"status-{_token(after.status)}",
            [
                _e(before.name),
                _e(before.host),
                _badge(before.status),
                _badge(after.status),
            ],
        )
        for before, after in zip(drill.checks_before, drill.checks_after, strict=False)
    ]
    diffs = "".join(f"<li>{_e(d)}</li>" for d in drill.differences)
    return (
        f'<section id="drill"><h2>DrillReport {verdict}</h2>'
        f"<p>failure at <code>{_e(drill.fail_at)}</code>: {_e(drill.failure or '-')};"
        f" recovery {_e(_ms(drill.recovery_ms))}</p>"
        f"{_table(['check', 'host', 'before', 'after'], rows, 'drill-table')}"
        f"{f'<ul>{diffs}</ul>' if diffs else ''}</section>"
    )


def _notices(report: Report) -> str:
    if not report.notices:
        return ""
    items = "".join(
        f"<li><code>{_e(n.kind)}</code> {_e(f'{n.host}: ' if n.host else '')}"
        f"{_e(n.message)}</li>"
        for n in report.notices
    )
    return f'<section id="notices"><h2>Notices</h2><ul>{items}</ul></section>'


def _footer(report: Report) -> str:
    head = report.chain_head
    value = (
        f"<code>{_e(head)}</code>"
        if head
        else '<span class="missing">not recorded</span>'
    )
    return (
        f'<footer id="audit">Audit chain head: <span id="chain-head">{value}</span>'
        f" (the SHA-256 of the audit log's last record after this run; compare it with"
        f" <code>runbook audit verify</code>)</footer>"
    )


def render_html(report: Report) -> str:
    runs = report.all_steps()
    indexes = {id(run): i for i, run in enumerate(runs)}
    title = f"runbook {report.run.runbook_name}: {report.run.status}"
    body = "".join(
        (
            _header(report),
            _needs_human(report),
            _timeline(report, indexes),
            _go_no_go(report.go_no_go),
            _approvals(report),
            _rollback(report.rollback),
            _drill(report.drill),
            _details(runs),
            _notices(report),
            _footer(report),
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{PAGE_CSS}</style></head>"
        f"<body>{body}<script>{PAGE_JS}</script></body></html>\n"
    )
