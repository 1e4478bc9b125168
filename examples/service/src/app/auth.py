"""Password hashing (PBKDF2-SHA256) and JWT HS256 tokens, with the standard library.

A stored hash reads `pbkdf2_sha256$<iterations>$<salt>$<digest>` (base64url).
Tokens carry `sub` (user id), `iat` and `exp`; roles are looked up per request,
so a promotion or a deleted account takes effect without new tokens.

Key rotation without downtime: tokens are signed with the current secret and their
header names it, `kid` = the first 8 hex digits of the SHA-256 of the secret (a
fingerprint, not the key). They are verified with the secret their `kid` names,
the current one or one of the previous secrets still accepted during a grace
period (JWT_PREVIOUS_SECRETS); a token without `kid` (issued before kids) is tried
against each of them. An unknown `kid` is refused.
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


def key_id(secret: str) -> str:
    """The `kid` of a signing secret: the first 8 hex digits of its SHA-256."""
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def _sign(signing_input: str, secret: str) -> str:
    mac = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256)
    return _b64encode(mac.digest())


def encode_token(claims: dict[str, Any], secret: str) -> str:
    header_fields = {"alg": "HS256", "typ": "JWT", "kid": key_id(secret)}
    header = _b64encode(json.dumps(header_fields, separators=(",", ":")).encode())
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


def token_key_id(token: str) -> str | None:
    """The `kid` in a token's header (not verified), or None."""
    try:
        kid = _parse_json_segment(token.split(".")[0]).get("kid")
    except TokenError:
        return None
    return kid if isinstance(kid, str) else None


def _candidate_keys(header: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, ...]:
    kid = header.get("kid")
    if kid is None:
        return keys  # a token from before kids: try every accepted key
    named = tuple(key for key in keys if isinstance(kid, str) and key_id(key) == kid)
    if not named:
        raise TokenError("token signed with an unknown or retired key")
    return named


def decode_token(
    token: str,
    secret: str,
    *,
    previous: tuple[str, ...] = (),
    now: float | None = None,
) -> dict[str, Any]:
    """Verified claims of `token`, signed with `secret` or one of `previous`, or
    TokenError (bad shape, unknown kid, signature, alg; TokenExpiredError: exp)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("malformed token")
    header_segment, payload, signature = parts
    header = _parse_json_segment(header_segment)
    if header.get("alg") != "HS256":
        raise TokenError("unsupported token algorithm")
    signing_input = f"{header_segment}.{payload}"
    keys = _candidate_keys(header, (secret, *previous))
    if not any(
        hmac.compare_digest(signature, _sign(signing_input, key)) for key in keys
    ):
        raise TokenError("bad token signature")
    claims = _parse_json_segment(payload)
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= (time.time() if now is None else now):
        raise TokenExpiredError("token expired")
    return claims
