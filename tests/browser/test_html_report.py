"""The HTML report opened in a real headless Chromium (Debian's ``chromium``): what a
person sees once the page's scripts ran, and what the screenshot shows.

Skips only when chromium is not installed; ``.ci/run`` installs it.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
import zlib
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

import pytest

from runbook_engine.record import events as ev
from runbook_engine.record.reports import write

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium")
CHAIN_HEAD = "5e" * 32
FAILED_RGB = (209, 36, 47)  # --failed in the page's stylesheet
OK_RGB = (46, 157, 83)  # --ok


def record(event: ev.Event) -> dict[str, Any]:
    return {"event": event.name, **event.record()}


def _finished(
    t0: float, host: str, step: str, status: str, start: int, ms: int, **kw: Any
) -> ev.StepFinished:
    fields: dict[str, Any] = {
        "phase": "steps",
        "rc": 0,
        "attempt": 1,
        "command": f"./{step}.sh",
        "message": None,
        "stdout_tail": "",
        "stderr_tail": "",
    }
    fields.update(kw)
    return ev.StepFinished(
        step=step,
        host=host,
        status=ev.Status(status),
        duration_ms=ms,
        started_at=t0 + start / 1000,
        **fields,
    )


def rolled_back_records() -> list[dict[str, Any]]:
    t0 = time.time() - 30
    events: list[ev.Event] = [
        ev.RunStarted(
            runbook="runbooks/release.yaml",
            runbook_name="release",
            runbook_sha256="ab" * 32,
            git_commit=None,
            params={"version": "1.1.0"},
            operator="alice@ci",
            command_line="runbook run runbooks/release.yaml -e version=1.1.0",
            hosts=["app-1", "app-2"],
        )
    ]
    for host in ("app-1", "app-2"):
        events.append(
            _finished(t0, host, "disk_free", "ok", 0, 40, phase="preconditions")
        )
    events.append(
        ev.GoNoGo(
            go=True,
            checks=[
                {
                    "step": "disk_free",
                    "name": "Disk has 1 GiB free",
                    "host": h,
                    "status": "ok",
                    "message": "",
                }
                for h in ("app-1", "app-2")
            ],
        )
    )
    for host in ("app-1", "app-2"):
        events.append(_finished(t0, host, "upload", "changed", 100, 1500))
        events.append(_finished(t0, host, "migrate", "changed", 1700, 2500))
    events.append(_finished(t0, "app-1", "restart", "changed", 4300, 700))
    events.append(
        _finished(
            t0,
            "app-2",
            "restart",
            "failed",
            4300,
            3000,
            rc=3,
            attempt=2,
            message="exit code 3",
            stderr_tail="app.service: <b>start</b> request repeated too quickly",
        )
    )
    events.append(
        ev.RollbackStarted(
            hosts=["app-1", "app-2"], reason="restart failed on app-2", scope="all"
        )
    )
    for host in ("app-1", "app-2"):
        for step, start, ms in (("migrate", 7400, 1200), ("upload", 8700, 500)):
            events.append(ev.UndoStarted(step=step, host=host, command=None))
            events.append(
                ev.UndoFinished(
                    step=step,
                    host=host,
                    status=ev.Status.OK,
                    rc=0,
                    duration_ms=ms,
                    message=None,
                    started_at=t0 + start / 1000,
                )
            )
    events += [
        ev.RollbackFinished(ok=True),
        ev.RunFinished(
            status=ev.RunStatus.ROLLED_BACK,
            duration_ms=9300,
            hosts={"app-1": "rolled_back", "app-2": "rolled_back"},
            message="restart failed on app-2; rolled back",
        ),
    ]
    return [record(e) for e in events]


def chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )


class Dom(HTMLParser):
    """The dumped DOM as a flat list of (tag, attrs, text inside it)."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str], list[str]]] = []
        self.open: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        texts: list[str] = []
        self.elements.append((tag, {k: v or "" for k, v in attrs}, texts))
        if tag not in ("input", "meta", "br", "img"):
            self.open.append(texts)

    def handle_endtag(self, tag: str) -> None:
        if self.open and tag not in ("input", "meta", "br", "img"):
            self.open.pop()

    def handle_data(self, data: str) -> None:
        for texts in self.open:
            texts.append(data)

    def find(self, tag: str, cls: str = "") -> list[tuple[dict[str, str], str]]:
        return [
            (attrs, "".join(texts))
            for name, attrs, texts in self.elements
            if name == tag and set(cls.split()) <= set(attrs.get("class", "").split())
        ]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if CHROMIUM is None:  # like sshd and postgres: a missing tool fails, never skips
        pytest.fail("chromium is not installed (apt-get install chromium)")
    path = tmp_path_factory.mktemp("report") / "report.html"
    write("html", path, rolled_back_records(), chain_head=CHAIN_HEAD, run_id="run-7")
    return path


@pytest.fixture(scope="module")
def dom(page: Path, tmp_path_factory: pytest.TempPathFactory) -> Dom:
    done = chromium(page, tmp_path_factory.mktemp("profile"), "--dump-dom")
    parsed = Dom()
    parsed.feed(done.stdout)
    return parsed


def test_scripts_ran_and_added_status_filters(dom: Dom) -> None:
    ((html_attrs, _),) = dom.find("html")
    assert html_attrs.get("data-js") == "ready"
    filters = [text.strip() for _, text in dom.find("label", "filter")]
    assert filters == ["ok (6)", "changed (5)", "failed (1)"]


def test_each_host_has_a_timeline_with_status_coloured_bars(dom: Dom) -> None:
    hosts = [text for _, text in dom.find("span", "host-name")]
    assert hosts == ["app-1", "app-2"]
    rows = dom.find("div", "step-row")
    labels = [(attrs["class"], text) for attrs, text in rows]
    assert any(
        "status-failed" in cls
        and "steps/restart" in text
        and "failed · 3.0s · 2 attempts" in text
        for cls, text in labels
    )
    bars = dom.find("a", "bar")
    assert len(bars) == 12  # 2 hosts x (1 check + 3 steps + 2 undos)
    failed = [attrs for attrs, _ in dom.find("a", "bar status-failed")]
    assert len(failed) == 1
    assert "left:46.237%" in failed[0]["style"]  # 4.3s of a 9.3s run


def test_rollback_is_visible_and_labelled(dom: Dom) -> None:
    undo_rows = [text for _, text in dom.find("div", "step-row kind-undo")]
    assert sum("undo migrate" in t for t in undo_rows) == 2
    assert sum("undo upload" in t for t in undo_rows) == 2
    bands = [text for _, text in dom.find("div", "rollback-band")]
    assert bands == ["rollback", "rollback"]
    assert [a for a, _ in dom.find("a", "bar kind-undo status-ok")]


def test_failed_step_details_are_open_after_load(dom: Dom) -> None:
    opened = [
        (attrs, text) for attrs, text in dom.find("details", "step") if "open" in attrs
    ]
    assert len(opened) == 1
    attrs, text = opened[0]
    assert "status-failed" in attrs["class"]
    assert "app.service: <b>start</b> request repeated too quickly" in text  # as text


def test_go_no_go_table_and_chain_head(dom: Dom) -> None:
    rows = [text for _, text in dom.find("tr", "status-ok")]
    assert "Disk has 1 GiB freeapp-1ok" in rows
    assert "Disk has 1 GiB freeapp-2ok" in rows
    heads = [
        text for attrs, text in dom.find("span") if attrs.get("id") == "chain-head"
    ]
    assert heads == [CHAIN_HEAD]


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) into rows of pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 4
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows = zlib.decompress(idat), width * channels, []
    previous = bytearray(stride)
    for y in range(height):
        filter_type, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if filter_type == 1:
                line[i] = (line[i] + left) & 255
            elif filter_type == 2:
                line[i] = (line[i] + up) & 255
            elif filter_type == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif filter_type == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (
                    line[i]
                    + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)
                ) & 255
        rows.append(bytes(line))
        previous = line
    return width, channels, rows


def _count(rows: list[bytes], channels: int, rgb: tuple[int, int, int]) -> int:
    return sum(
        1
        for row in rows
        for i in range(0, len(row), channels)
        if abs(row[i] - rgb[0]) < 8
        and abs(row[i + 1] - rgb[1]) < 8
        and abs(row[i + 2] - rgb[2]) < 8
    )


def test_screenshot_shows_a_red_failed_bar_and_green_bars(
    page: Path, tmp_path: Path
) -> None:
    shot = tmp_path / "shot.png"
    chromium(
        page, tmp_path / "profile", "--window-size=1000,900", f"--screenshot={shot}"
    )
    width, channels, rows = _png_pixels(shot.read_bytes())
    assert width == 1000
    assert _count(rows, channels, FAILED_RGB) > 1500  # the failed bar (and its badges)
    assert _count(rows, channels, OK_RGB) > 300


def test_step_labels_wrap_instead_of_being_cut(dom: Dom) -> None:
    from runbook_engine.record.report_assets import PAGE_CSS

    labels = [attrs["title"] for attrs, text in dom.find("div", "label") if text]
    assert "steps/migrate" in labels and "undo migrate" in labels
    assert all(
        title == text
        for (attrs, text) in dom.find("div", "label")
        if text
        for title in [attrs["title"]]
    )  # the full label is on the page and on hover
    rule = PAGE_CSS.split(".label {", 1)[1].split("}", 1)[0]
    assert "ellipsis" not in rule and "nowrap" not in rule  # long ids wrap
