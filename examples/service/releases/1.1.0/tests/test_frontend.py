from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import support
from support import make_api, migrated_db

BUILD = support.RELEASE_DIR / "frontend" / "build.py"


class FrontendBuildTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.tmp)

    def _build(self, out: Path) -> dict[str, str]:
        subprocess.run(
            [sys.executable, str(BUILD), "--out", str(out)],
            check=True,
            capture_output=True,
        )
        return dict(json.loads((out / "manifest.json").read_text()))

    def test_index_points_at_hashed_assets(self) -> None:
        manifest = self._build(self.tmp / "dist")
        html = (self.tmp / "dist" / "index.html").read_text()
        for key in ("app_js", "style_css"):
            self.assertIn(f"/assets/{manifest[key]}", html)
            self.assertTrue((self.tmp / "dist" / "assets" / manifest[key]).is_file())
        self.assertNotIn("{{", html)

    def test_the_release_notice_is_built_into_the_script(self) -> None:
        manifest = self._build(self.tmp / "dist")
        script = (self.tmp / "dist" / "assets" / manifest["app_js"]).read_text()
        notice_file = BUILD.parent / "src" / "notice.txt"
        notice = notice_file.read_text().strip() if notice_file.is_file() else ""
        self.assertIn(f"const NOTICE = {json.dumps(notice)};", script)
        self.assertNotIn("{{notice}}", script)

    def test_build_is_reproducible_and_replaces_the_old_dist(self) -> None:
        first = self._build(self.tmp / "dist")
        (self.tmp / "dist" / "stale.txt").write_text("old")
        self.assertEqual(self._build(self.tmp / "dist"), first)
        self.assertFalse((self.tmp / "dist" / "stale.txt").exists())

    def test_server_serves_the_built_index(self) -> None:
        api = make_api(migrated_db(self.tmp))
        dist = self.tmp / "dist"
        manifest = self._build(dist)
        api.release = support.replace(api.release, frontend_dist=dist)
        index = api.handle(support.Request("GET", "/", {}))
        self.assertEqual(index.status, 200)
        self.assertTrue(index.content_type.startswith("text/html"))
        asset = api.handle(support.Request("GET", f"/assets/{manifest['app_js']}", {}))
        self.assertEqual(asset.status, 200)
        escape = api.handle(support.Request("GET", "/../VERSION", {}))
        self.assertEqual(escape.status, 404)


if __name__ == "__main__":
    unittest.main()
