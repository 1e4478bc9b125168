"""``--report FORMAT:PATH``: write one run's report as json, junit, markdown or html.

The run's records (live or from the audit log) become one ``Report``
(``report_model``); each format renders that model in its own module. This module
only picks the format and writes the file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .report_build import build_report
from .report_html import render_html
from .report_json import render_json
from .report_junit import render_junit
from .report_markdown import render_markdown

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

    from .report_model import Report

FORMATS: dict[str, Callable[[Report], str]] = {
    "json": render_json,
    "junit": render_junit,
    "markdown": render_markdown,
    "html": render_html,
}


def render(
    kind: str,
    records: Sequence[Mapping[str, Any]],
    chain_head: str | None = None,
    run_id: str | None = None,
) -> str:
    """The report text. Raises ``ValueError`` for an unknown ``kind``."""
    renderer = FORMATS.get(kind)
    if renderer is None:
        raise ValueError(f"unknown report format {kind!r} (use {', '.join(FORMATS)})")
    return renderer(build_report(records, chain_head, run_id))


def write(
    kind: str,
    path: Path,
    records: Sequence[Mapping[str, Any]],
    chain_head: str | None = None,
    run_id: str | None = None,
) -> None:
    """Write the ``kind`` report of one run's ``records`` (already masked) to
    ``path``, creating its directory. ``chain_head`` is the audit chain's head hash
    after the run (shown as "not recorded" when None); ``run_id`` names a live run,
    whose records do not carry it."""
    text = render(kind, records, chain_head, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
