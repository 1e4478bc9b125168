"""The ``json`` report: the whole run model, versioned by ``schema_version`` and
described by ``schemas/report.schema.json``."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from .. import __version__
from .report_model import SCHEMA_VERSION

if TYPE_CHECKING:
    from .report_model import Report


def report_data(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data (what ``render_json`` prints)."""
    data = asdict(report)
    for host in data["hosts"]:
        for step in host["steps"]:
            step["retries"] = list(step["retries"])
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": f"runbook {__version__}",
        **data,
    }


def render_json(report: Report) -> str:
    return (
        json.dumps(report_data(report), indent=2, ensure_ascii=False, default=str)
        + "\n"
    )
