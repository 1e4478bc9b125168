"""JWT key rotation: sign with the current secret, accept the previous ones during
the grace period, refuse them once dropped."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import tempfile
import unittest
from pathlib import Path

import support  # noqa: F401  (puts app/ on sys.path)
from auth import TokenError, decode_token, encode_token, issue_token, key_id
from settings import ConfigError, load_settings
from support import call, make_api, migrated_db, register_and_login

OLD = "old-secret-" + "o" * 40
NEW = "new-secret-" + "n" * 40


def _header(token: str) -> dict[str, object]:
    segment = token.split(".")[0]
    return dict(
        json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    )


class KeyIdTest(unittest.TestCase):
    def test_tokens_name_their_key_by_a_fingerprint(self) -> None:
        header = _header(issue_token(1, NEW, 60))
        self.assertEqual(header["kid"], hashlib.sha256(NEW.encode()).hexdigest()[:8])
        self.assertEqual(header["kid"], key_id(NEW))
        self.assertNotIn(NEW, json.dumps(header))

    def test_a_previous_key_is_accepted_only_while_listed(self) -> None:
        token = issue_token(5, OLD, 60)
        self.assertEqual(decode_token(token, NEW, previous=(OLD,))["sub"], "5")
        with self.assertRaisesRegex(TokenError, "unknown or retired key"):
            decode_token(token, NEW)

    def test_a_known_kid_with_a_forged_signature_is_refused(self) -> None:
        header, payload, _ = issue_token(5, NEW, 60).split(".")
        forged_signature = issue_token(5, "attacker-key", 60).split(".")[2]
        with self.assertRaisesRegex(TokenError, "bad token signature"):
            decode_token(f"{header}.{payload}.{forged_signature}", NEW, previous=(OLD,))

    def test_tokens_from_before_kids_still_verify(self) -> None:
        payload = encode_token({"sub": "9", "exp": 2**40}, OLD).split(".")[1]
        header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
        signing_input = f"{header.decode()}.{payload}"
        mac = hmac.new(OLD.encode(), signing_input.encode(), hashlib.sha256).digest()
        signature = base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
        token = f"{signing_input}.{signature}"
        self.assertEqual(decode_token(token, NEW, previous=(OLD,))["sub"], "9")
        with self.assertRaisesRegex(TokenError, "bad token signature"):
            decode_token(token, NEW)


BASE = {"DATABASE_URL": "sqlite:////srv/app.db", "JWT_SECRET": NEW}


class PreviousSecretsSettingTest(unittest.TestCase):
    def test_comma_separated_stripped_without_duplicates_or_the_current(self) -> None:
        settings = load_settings(
            {**BASE, "JWT_PREVIOUS_SECRETS": f" {OLD} ,{OLD},,{NEW}"}
        )
        self.assertEqual(settings.jwt_previous_secrets, (OLD,))
        self.assertEqual(load_settings(BASE).jwt_previous_secrets, ())

    def test_production_refuses_a_short_previous_secret(self) -> None:
        env = {**BASE, "APP_ENV": "production", "JWT_PREVIOUS_SECRETS": "short"}
        with self.assertRaisesRegex(ConfigError, "JWT_PREVIOUS_SECRETS"):
            load_settings(env)


class RotationThroughTheApiTest(unittest.TestCase):
    """Three processes of one service: before, during and after a rotation."""

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.tmp)
        self.db = migrated_db(self.tmp)

    def test_old_tokens_work_during_the_grace_period_and_not_after(self) -> None:
        before = make_api(self.db, JWT_SECRET=OLD)
        old_token = register_and_login(before, "rot@example.test")
        during = make_api(self.db, JWT_SECRET=NEW, JWT_PREVIOUS_SECRETS=OLD)
        self.assertEqual(call(during, "GET", "/profile", token=old_token)[0], 200)
        new_token = register_and_login(during, "rot2@example.test")
        self.assertEqual(_header(new_token)["kid"], key_id(NEW))
        after = make_api(self.db, JWT_SECRET=NEW)
        status, body = call(after, "GET", "/profile", token=old_token)
        self.assertEqual((status, body["error"]), (401, "unauthorized"))
        self.assertEqual(call(after, "GET", "/profile", token=new_token)[0], 200)
        refused = 'auth_failures_total{reason="invalid_token"} 1'
        self.assertIn(refused, after.metrics.render().splitlines())


if __name__ == "__main__":
    unittest.main()
