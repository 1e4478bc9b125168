from __future__ import annotations

import unittest

import support  # noqa: F401  (puts app/ on sys.path)
from auth import (
    TokenError,
    decode_token,
    encode_token,
    hash_password,
    issue_token,
    verify_password,
)


class PasswordTest(unittest.TestCase):
    def test_hash_verifies_only_the_same_password(self) -> None:
        stored = hash_password("correct horse", iterations=1000)
        self.assertTrue(verify_password("correct horse", stored))
        self.assertFalse(verify_password("wrong horse", stored))

    def test_hashes_are_salted(self) -> None:
        first = hash_password("same", iterations=1000)
        self.assertNotEqual(first, hash_password("same", iterations=1000))

    def test_garbage_hash_never_verifies(self) -> None:
        self.assertFalse(verify_password("x", "not-a-hash"))


class TokenTest(unittest.TestCase):
    def test_issued_token_decodes_to_its_subject(self) -> None:
        claims = decode_token(issue_token(7, "s3cret", 60), "s3cret")
        self.assertEqual(claims["sub"], "7")
        self.assertGreater(claims["exp"], claims["iat"])

    def test_other_secret_is_rejected(self) -> None:
        with self.assertRaises(TokenError):
            decode_token(issue_token(7, "s3cret", 60), "other")

    def test_tampered_payload_is_rejected(self) -> None:
        header, _, signature = issue_token(7, "s3cret", 60).split(".")
        forged = encode_token({"sub": "1", "exp": 2**40}, "x").split(".")[1]
        with self.assertRaises(TokenError):
            decode_token(f"{header}.{forged}.{signature}", "s3cret")

    def test_expired_token_is_rejected(self) -> None:
        token = encode_token({"sub": "1", "exp": 1000}, "s3cret")
        with self.assertRaises(TokenError):
            decode_token(token, "s3cret")

    def test_malformed_token_is_rejected(self) -> None:
        for token in ("", "a.b", "a.b.c", "..."):
            with self.assertRaises(TokenError):
                decode_token(token, "s3cret")


if __name__ == "__main__":
    unittest.main()
