"""Password hashing (PBKDF2-SHA256) and JWT HS256 tokens, with the standard library.

A stored hash reads `pbkdf2_sha256$<iterations>$<salt>$<digest>` (base64url).
Tokens carry `sub` (user id), `iat` and `exp`; roles are looked up per request,
so a promotion or a deleted account takes effect without new tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

PBKDF2_ITERATIONS = 120_000
_HASH_SCHEME = "pbkdf2_sha256"
_JWT_HEADER = {"alg": "HS256", "typ": "JWT"}


class TokenError(Exception):
    """The token is malformed, badly signed or expired."""


class TokenExpiredError(TokenError):
    """The token was valid, but its `exp` has passed."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{_HASH_SCHEME}${iterations}${_b64encode(salt)}${_b64encode(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, iterations, salt, digest = encoded.split("$")
        if scheme != _HASH_SCHEME:
            return False
        computed = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), _b64decode(salt), int(iterations)
        )
    except ValueError:
        return False
    return hmac.compare_digest(computed, _b64decode(digest))


def _sign(signing_input: str, secret: str) -> str:
    mac = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256)
    return _b64encode(mac.digest())


def encode_token(claims: dict[str, Any], secret: str) -> str:
    header = _b64encode(json.dumps(_JWT_HEADER, separators=(",", ":")).encode())
    payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}"
    return f"{signing_input}.{_sign(signing_input, secret)}"


def issue_token(user_id: int, secret: str, ttl_seconds: int) -> str:
    now = int(time.time())
    return encode_token(
        {"sub": str(user_id), "iat": now, "exp": now + ttl_seconds}, secret
    )


def _parse_json_segment(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(segment))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenError("malformed token") from exc
    if not isinstance(value, dict):
        raise TokenError("malformed token")
    return value


def decode_token(
    token: str, secret: str, *, now: float | None = None
) -> dict[str, Any]:
    """Verified claims of `token`, or TokenError (bad shape, signature, alg, exp)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("malformed token")
    header, payload, signature = parts
    if _parse_json_segment(header).get("alg") != "HS256":
        raise TokenError("unsupported token algorithm")
    if not hmac.compare_digest(signature, _sign(f"{header}.{payload}", secret)):
        raise TokenError("bad token signature")
    claims = _parse_json_segment(payload)
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= (time.time() if now is None else now):
        raise TokenExpiredError("token expired")
    return claims
