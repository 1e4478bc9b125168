from __future__ import annotations

import io
import json
import logging
import shutil
import tempfile
import unittest
from pathlib import Path

import support
from logs import JsonFormatter, request_id_from
from support import call, make_api, migrated_db, register_and_login

PASSWORD = "log-test-password-7781"


class LogCapture:
    """The service's log lines while a test runs, decoded."""

    def __init__(self, test: unittest.TestCase) -> None:
        self.stream = io.StringIO()
        handler = logging.StreamHandler(self.stream)
        handler.setFormatter(JsonFormatter())
        logger = logging.getLogger("service")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        test.addCleanup(logger.removeHandler, handler)

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.text.splitlines()]

    def requests(self) -> list[dict[str, object]]:
        return [line for line in self.lines() if line["msg"] == "request"]


class RequestIdTest(unittest.TestCase):
    def test_a_safe_incoming_id_is_kept(self) -> None:
        self.assertEqual(request_id_from("abc-123_X.y"), ("abc-123_X.y", False))

    def test_an_unsafe_or_long_id_is_replaced(self) -> None:
        for bad in ("a b", "x\nforged", '"quote"', "a" * 65, "ünï"):
            new, refused = request_id_from(bad)
            self.assertTrue(refused, bad)
            self.assertRegex(new, r"^[0-9a-f]{16}$")

    def test_no_id_gets_a_new_one(self) -> None:
        first, refused = request_id_from("")
        self.assertFalse(refused)
        self.assertNotEqual(first, request_id_from("")[0])


class RequestLogTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.tmp)
        self.api = make_api(migrated_db(self.tmp))
        self.log = LogCapture(self)

    def test_one_json_line_per_request_with_the_echoed_id(self) -> None:
        response = self.api.handle(
            support.Request("GET", "/health?x=1", {"x-request-id": "rid-1"})
        )
        self.assertIn(("X-Request-ID", "rid-1"), response.headers)
        [line] = self.log.lines()
        self.assertEqual(
            {k: line[k] for k in ("level", "msg", "request_id", "method", "route")},
            {
                "level": "info",
                "msg": "request",
                "request_id": "rid-1",
                "method": "GET",
                "route": "/health",
            },
        )
        self.assertEqual(line["status"], 200)
        self.assertIsInstance(line["duration_ms"], float)
        self.assertRegex(str(line["ts"]), r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertNotIn("user_id", line)

    def test_a_refused_incoming_id_is_replaced_everywhere(self) -> None:
        headers = {"x-request-id": "evil\nid"}
        response = self.api.handle(support.Request("GET", "/health", headers))
        echoed = dict(response.headers)["X-Request-ID"]
        self.assertRegex(echoed, r"^[0-9a-f]{16}$")
        self.assertEqual({line["request_id"] for line in self.log.lines()}, {echoed})
        self.assertNotIn("evil", self.log.text)

    def test_user_id_once_known(self) -> None:
        token = register_and_login(self.api, "who@example.test", PASSWORD)
        call(self.api, "GET", "/profile", token=token)
        call(self.api, "GET", "/profile")
        register, login, profile, anonymous = self.log.requests()
        self.assertEqual(register["user_id"], login["user_id"])
        self.assertEqual(profile["user_id"], login["user_id"])
        self.assertEqual((anonymous["status"], anonymous["level"]), (401, "warning"))
        self.assertNotIn("user_id", anonymous)

    def test_routes_are_bounded_never_raw_paths(self) -> None:
        call(self.api, "GET", "/no/such/page")
        call(self.api, "POST", "/nope")
        routes = [line["route"] for line in self.log.requests()]
        self.assertEqual(routes, ["static", "unmatched"])

    def test_every_error_has_its_own_line_with_the_request_id(self) -> None:
        api = make_api(self.tmp / "missing.db")
        headers = {"x-request-id": "db-down-1"}
        api.handle(support.Request("GET", "/test-db", headers))
        token = register_and_login(self.api, "err@example.test", PASSWORD)
        api.handle(
            support.Request("GET", "/wallet", {"authorization": f"Bearer {token}"})
        )
        errors = [line for line in self.log.lines() if line["level"] == "error"]
        messages = [(line["msg"], line.get("status")) for line in errors]
        self.assertEqual(
            messages,
            [
                ("database check failed", None),
                ("request", 503),
                ("database error", None),
                ("request", 503),
            ],
        )
        self.assertEqual(errors[0]["request_id"], "db-down-1")
        self.assertEqual(errors[0]["error"], "database_unavailable")
        self.assertEqual(errors[2]["request_id"], errors[3]["request_id"])

    def test_passwords_and_tokens_never_reach_the_log(self) -> None:
        token = register_and_login(self.api, "secret@example.test", PASSWORD)
        call(
            self.api,
            "POST",
            "/login",
            {"email": "secret@example.test", "password": PASSWORD + "x"},
        )
        forged = token[:-4] + "AAAA"
        call(self.api, "GET", "/profile", token=forged)
        call(self.api, "GET", "/profile", token="not.a.token")
        self.assertEqual(len(self.log.requests()), 5)
        for needle in (PASSWORD, token, forged, token.split(".")[2], support.SECRET):
            self.assertNotIn(needle, self.log.text)


if __name__ == "__main__":
    unittest.main()
