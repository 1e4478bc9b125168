from __future__ import annotations

import shutil
import tempfile
import unittest
from pathlib import Path

import support
from support import call, make_api, migrated_db, register_and_login


class ApiTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.tmp)
        self.api = make_api(migrated_db(self.tmp), CORS_ORIGINS="https://app.test")

    def test_health_reports_the_release_version(self) -> None:
        status, body = call(self.api, "GET", "/health")
        self.assertEqual((status, body["status"]), (200, "ok"))
        self.assertEqual(body["version"], self.api.release.version)

    def test_test_db_ok_at_the_release_schema(self) -> None:
        status, body = call(self.api, "GET", "/test-db")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["schema_version"], self.api.release.schema_version)

    def test_test_db_fails_when_schema_is_behind(self) -> None:
        behind = self.tmp / "behind"
        behind.mkdir()
        api = make_api(migrated_db(behind, version=0))
        status, body = call(api, "GET", "/test-db")
        self.assertEqual((status, body["error"]), (503, "schema_mismatch"))

    def test_test_db_fails_when_database_is_missing(self) -> None:
        api = make_api(self.tmp / "missing.db")
        status, body = call(api, "GET", "/test-db")
        self.assertEqual((status, body["error"]), (503, "database_unavailable"))

    def test_account_flow(self) -> None:
        token = register_and_login(self.api, "ann@example.test")
        status, profile = call(self.api, "GET", "/profile", token=token)
        self.assertEqual((status, profile["email"]), (200, "ann@example.test"))
        status, trade = call(
            self.api, "POST", "/trade", {"symbol": "acme", "qty": 2}, token=token
        )
        self.assertEqual((status, trade["symbol"]), (201, "ACME"))
        status, wallet = call(self.api, "GET", "/wallet", token=token)
        self.assertEqual((status, wallet["positions"]), (200, {"ACME": 2}))

    def test_selling_more_than_held_is_a_conflict(self) -> None:
        token = register_and_login(self.api, "bob@example.test")
        payload = {"symbol": "ACME", "qty": -1}
        status, _ = call(self.api, "POST", "/trade", payload, token=token)
        self.assertEqual(status, 409)

    def test_bad_input_is_400(self) -> None:
        token = register_and_login(self.api, "cid@example.test")
        for payload in ({"symbol": "NOPE", "qty": 1}, {"symbol": "ACME", "qty": 0}):
            status, body = call(self.api, "POST", "/trade", payload, token=token)
            self.assertEqual((status, body["error"]), (400, "invalid_input"))
        status, _ = call(self.api, "POST", "/register", {"email": "x", "password": "p"})
        self.assertEqual(status, 400)

    def test_duplicate_registration_is_409(self) -> None:
        register_and_login(self.api, "dup@example.test")
        payload = {"email": "DUP@example.test", "password": "password-123"}
        status, _ = call(self.api, "POST", "/register", payload)
        self.assertEqual(status, 409)

    def test_wrong_password_is_401(self) -> None:
        register_and_login(self.api, "eve@example.test")
        payload = {"email": "eve@example.test", "password": "nope-nope"}
        status, body = call(self.api, "POST", "/login", payload)
        self.assertEqual((status, body["error"]), (401, "invalid_credentials"))

    def test_protected_routes_need_a_valid_token(self) -> None:
        for path in ("/profile", "/wallet", "/admin/queue"):
            self.assertEqual(call(self.api, "GET", path)[0], 401)
            self.assertEqual(call(self.api, "GET", path, token="a.b.c")[0], 401)

    def test_admin_queue_is_for_admins_only(self) -> None:
        token = register_and_login(self.api, "user@example.test")
        self.assertEqual(call(self.api, "GET", "/admin/queue", token=token)[0], 403)
        conn = support.connect(self.api.settings.database_path)
        try:
            outcome = support.ensure_admin(
                conn, "boss@example.test", "admin-pass-123", iterations=1000
            )
        finally:
            conn.close()
        self.assertEqual(outcome, "created")
        admin = register_and_login(self.api, "boss@example.test", "admin-pass-123")
        status, body = call(self.api, "GET", "/admin/queue", token=admin)
        self.assertEqual(status, 200)
        self.assertIsInstance(body["pending"], list)

    def test_unknown_route_and_wrong_method(self) -> None:
        self.assertEqual(call(self.api, "GET", "/nope")[0], 404)
        self.assertEqual(call(self.api, "POST", "/health")[0], 405)

    def test_invalid_json_is_400(self) -> None:
        response = self.api.handle(support.Request("POST", "/register", {}, b"{nope"))
        self.assertEqual(response.status, 400)

    def test_cors_header_only_for_allowed_origins(self) -> None:
        allowed = self.api.handle(
            support.Request("GET", "/health", {"origin": "https://app.test"})
        )
        self.assertIn(
            ("Access-Control-Allow-Origin", "https://app.test"), allowed.headers
        )
        other = self.api.handle(
            support.Request("GET", "/health", {"origin": "https://evil.test"})
        )
        names = [name for name, _ in other.headers]
        self.assertNotIn("Access-Control-Allow-Origin", names)


if __name__ == "__main__":
    unittest.main()
