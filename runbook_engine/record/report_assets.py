# ruff: noqa: E501 - the CSS and JS below are page text, wrapped for reading, not Python
"""The inline stylesheet and script of the HTML report (``report_html``). Kept apart so
the page's markup reads on its own; nothing here is fetched from anywhere."""

from __future__ import annotations

PAGE_CSS = """
:root { --label: 230px; --ok: #2e9d53; --changed: #1f6feb; --skipped: #9aa4ae;
  --failed: #d1242f; --unknown: #8250df; --unfinished: #bf8700; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328;
  margin: 0 auto; max-width: 1280px; padding: 16px 24px 40px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 8px; } h2 { font-size: 17px; margin: 28px 0 8px;
  border-bottom: 1px solid #d0d7de; padding-bottom: 4px; } h3 { font-size: 15px; margin: 14px 0 4px; }
code, pre, .label { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; }
code { font-size: 12px; background: #f6f8fa; padding: 1px 4px; border-radius: 4px; }
pre { background: #f6f8fa; padding: 8px 10px; border-radius: 6px; overflow-x: auto;
  font-size: 12px; white-space: pre-wrap; word-break: break-all; margin: 6px 0; }
header.run { border-left: 6px solid var(--skipped); padding: 8px 14px; background: #f6f8fa;
  border-radius: 6px; }
header.status-succeeded { border-color: var(--ok); }
header.status-failed, header.status-rollback_failed, header.status-no_go { border-color: var(--failed); }
header.status-rolled_back, header.status-interrupted, header.status-unfinished { border-color: var(--unfinished); }
dl.facts { display: grid; grid-template-columns: max-content minmax(0, 1fr) max-content minmax(0, 1fr);
  gap: 2px 14px; margin: 6px 0 0; }
dl.facts dt { color: #59636e; } dl.facts dd { margin: 0; word-break: break-all; }
.message { margin: 4px 0; }
.badge { display: inline-block; font-size: 12px; font-weight: 600; padding: 1px 8px;
  border-radius: 10px; color: #fff; background: var(--skipped); vertical-align: middle; }
.status-ok, .status-succeeded { --c: var(--ok); } .status-changed { --c: var(--changed); }
.status-skipped { --c: var(--skipped); }
.status-failed, .status-rollback_failed, .status-no_go { --c: var(--failed); }
.status-unknown { --c: var(--unknown); }
.status-unfinished, .status-rolled_back, .status-interrupted { --c: var(--unfinished); }
.badge { background: var(--c, var(--skipped)); }
#needs-human { border: 2px solid var(--failed); border-radius: 6px; padding: 0 14px 6px;
  margin-top: 16px; } #needs-human h2 { color: var(--failed); border: 0; margin-top: 10px; }
#filters { margin: 4px 0 8px; } #filters label { margin-right: 14px; font-size: 13px; }
#filters label::before { content: ""; display: inline-block; width: 10px; height: 10px;
  border-radius: 2px; background: var(--c); margin-right: 4px; }
.row { display: grid; grid-template-columns: var(--label) 1fr; align-items: center; min-height: 22px; }
.row.hidden { display: none; }
.label { font-size: 12px; overflow-wrap: anywhere; white-space: normal; padding: 2px 8px 2px 0; }
.kind-undo .label { color: #9a3412; font-style: italic; }
.track { position: relative; height: 22px; border-left: 1px solid #d0d7de;
  background: repeating-linear-gradient(to right, transparent 0 calc(25% - 1px), #eef1f4 calc(25% - 1px) 25%); }
.axis .track { border: 0; background: none; height: 18px; }
.tick { position: absolute; font-size: 11px; color: #59636e; transform: translateX(-50%); }
.tick:first-child { transform: none; } .tick:last-child { transform: translateX(-100%); }
.bar { position: absolute; top: 4px; height: 14px; min-width: 3px; border-radius: 3px;
  background: var(--c); display: block; }
.bar.kind-undo { background-image: repeating-linear-gradient(135deg, rgba(255,255,255,.55) 0 3px, transparent 3px 7px);
  outline: 1px solid var(--c); }
.bar:hover, .bar.selected { outline: 2px solid #1f2328; }
.bar-text { position: absolute; top: 3px; font-size: 11px; white-space: nowrap; color: #424a53; }
.lanes { position: relative; }
.rollback-band { position: absolute; top: 0; bottom: 0; pointer-events: none;
  left: calc(var(--label) + (100% - var(--label)) * var(--left));
  width: calc((100% - var(--label)) * var(--width)); min-width: 2px;
  background: rgba(209, 36, 47, .07); border-left: 2px dashed var(--failed); }
.rollback-band span { position: absolute; top: -16px; left: 4px; font-size: 11px; font-weight: 600;
  color: var(--failed); text-transform: uppercase; letter-spacing: .04em; }
section.host { margin-bottom: 18px; } section.host h3 small { color: #59636e; font-weight: normal; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; border-bottom: 1px solid #d0d7de; padding: 4px 8px; vertical-align: top; }
thead th { background: #f6f8fa; }
details.step { border: 1px solid #d0d7de; border-left: 4px solid var(--c); border-radius: 6px;
  padding: 4px 10px; margin: 6px 0; }
details.step.selected { box-shadow: 0 0 0 2px #1f2328; }
details.step summary { cursor: pointer; }
details.step h4 { margin: 6px 0 0; font-size: 12px; color: #59636e; }
footer#audit { margin-top: 28px; padding-top: 8px; border-top: 1px solid #d0d7de; font-size: 13px; }
.missing { font-style: italic; color: #9a3412; }
"""

PAGE_JS = """
(function () {
  "use strict";
  var doc = document;
  var counts = {};
  doc.querySelectorAll(".step-row").forEach(function (row) {
    var status = row.getAttribute("data-status");
    counts[status] = (counts[status] || 0) + 1;
  });
  var filters = doc.getElementById("filters");
  Object.keys(counts).forEach(function (status) {
    var label = doc.createElement("label");
    label.className = "filter status-" + status;
    var box = doc.createElement("input");
    box.type = "checkbox";
    box.checked = true;
    box.value = status;
    box.addEventListener("change", function () {
      doc.querySelectorAll('.step-row[data-status="' + status + '"]').forEach(function (row) {
        row.classList.toggle("hidden", !box.checked);
      });
    });
    label.appendChild(box);
    label.appendChild(doc.createTextNode(" " + status + " (" + counts[status] + ")"));
    if (filters) { filters.appendChild(label); }
  });
  function select(id) {
    var target = doc.getElementById(id);
    if (!target || target.tagName !== "DETAILS") { return; }
    doc.querySelectorAll(".selected").forEach(function (el) { el.classList.remove("selected"); });
    target.open = true;
    target.classList.add("selected");
    var bar = doc.querySelector('.bar[href="#' + id + '"]');
    if (bar) { bar.classList.add("selected"); }
  }
  doc.querySelectorAll(".bar").forEach(function (bar) {
    bar.addEventListener("click", function () { select(bar.getAttribute("href").slice(1)); });
  });
  doc.querySelectorAll("details.step").forEach(function (details) {
    var status = details.getAttribute("data-status");
    if (status === "failed" || status === "unknown" || status === "unfinished") {
      details.open = true;
    }
  });
  doc.querySelectorAll("time[datetime]").forEach(function (node) {
    var when = new Date(node.getAttribute("datetime"));
    if (!isNaN(when.getTime())) { node.title = "your time: " + when.toLocaleString(); }
  });
  if (location.hash) { select(location.hash.slice(1)); }
  doc.documentElement.setAttribute("data-js", "ready");
})();
"""
