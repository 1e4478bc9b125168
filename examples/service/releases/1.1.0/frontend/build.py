"""Build the frontend: src/ -> dist/ with content-hashed asset names.

    python frontend/build.py [--out DIR]

Strips comments and indentation from the CSS and JS, fills in the release's notice
(`src/notice.txt`, optional: one line shown next to the version), names each asset
after the first 10 hex digits of its SHA-256, and writes index.html pointing at
them plus a manifest.json. The new dist is built beside the old one and swapped
in, so a running server never sees a half-written build. Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

FRONTEND = Path(__file__).resolve().parent
VERSION_FILE = FRONTEND.parent / "VERSION"
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


def minify_css(text: str) -> str:
    text = _CSS_COMMENT.sub("", text)
    lines = (line.strip() for line in text.splitlines())
    return "".join(line for line in lines if line) + "\n"


def minify_js(text: str) -> str:
    lines = (line.strip() for line in text.splitlines())
    kept = [line for line in lines if line and not line.startswith("//")]
    return "\n".join(kept) + "\n"


def hashed_name(stem: str, suffix: str, content: str) -> str:
    digest = hashlib.sha256(content.encode()).hexdigest()[:10]
    return f"{stem}.{digest}{suffix}"


def read_notice(src: Path) -> str:
    """The release's one-line notice, or '' when it has none."""
    path = src / "notice.txt"
    return path.read_text(encoding="utf-8").strip() if path.is_file() else ""


def build(src: Path, out: Path, version: str) -> dict[str, str]:
    """Write the built site to `out` (replaced whole); returns the manifest."""
    css = minify_css((src / "style.css").read_text(encoding="utf-8"))
    js = minify_js((src / "app.js").read_text(encoding="utf-8"))
    js = js.replace('"{{notice}}"', json.dumps(read_notice(src)))
    manifest = {
        "version": version,
        "style_css": hashed_name("style", ".css", css),
        "app_js": hashed_name("app", ".js", js),
    }
    html = (src / "index.html").read_text(encoding="utf-8")
    for key, value in manifest.items():
        html = html.replace("{{" + key + "}}", value)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".dist-", dir=out.parent))
    (staging / "assets").mkdir()
    (staging / "assets" / manifest["style_css"]).write_text(css, encoding="utf-8")
    (staging / "assets" / manifest["app_js"]).write_text(js, encoding="utf-8")
    (staging / "index.html").write_text(html, encoding="utf-8")
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    _swap_in(staging, out)
    return manifest


def _swap_in(staging: Path, out: Path) -> None:
    if out.exists():
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old)
    else:
        staging.rename(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="build frontend/dist from src/")
    parser.add_argument("--out", type=Path, default=FRONTEND / "dist")
    args = parser.parse_args(argv)
    src = FRONTEND / "src"
    needed = ("index.html", "app.js", "style.css")
    missing = [name for name in needed if not (src / name).is_file()]
    if missing:
        print(f"build failed: missing {', '.join(missing)} in {src}", file=sys.stderr)
        return 1
    version = VERSION_FILE.read_text(encoding="utf-8").strip()
    manifest = build(src, args.out, version)
    print(f"built {args.out} ({manifest['app_js']}, {manifest['style_css']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
