"""Service configuration read from the environment, validated once at start-up.

DATABASE_URL and JWT_SECRET are required; the process refuses to start without
them (ConfigError carries the message shown to the operator). JWT_PREVIOUS_SECRETS
(comma-separated) are secrets whose tokens are still accepted while a rotation's
grace period runs; new tokens are always signed with JWT_SECRET.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from auth import PBKDF2_ITERATIONS

if TYPE_CHECKING:
    from collections.abc import Mapping

ENVIRONMENTS = ("development", "staging", "production")
MIN_PRODUCTION_SECRET = 32
URL_PREFIX = "sqlite://"


class ConfigError(Exception):
    """The environment does not describe a runnable service."""


@dataclass(frozen=True, slots=True)
class Settings:
    database_path: Path
    jwt_secret: str
    jwt_previous_secrets: tuple[str, ...]
    app_env: str
    cors_origins: tuple[str, ...]
    host: str
    port: int
    token_ttl_seconds: int
    password_iterations: int


def parse_database_url(url: str) -> Path:
    """`sqlite:////abs/app.db` or `sqlite:///abs/app.db` -> Path('/abs/app.db')."""
    if not url.startswith(URL_PREFIX):
        raise ConfigError(
            f"DATABASE_URL must look like sqlite:////absolute/path/app.db, got {url!r}"
        )
    rest = url[len(URL_PREFIX) :]
    if not rest.startswith("/") or rest.strip("/") == "":
        raise ConfigError(f"DATABASE_URL must name an absolute file path, got {url!r}")
    return Path("/" + rest.lstrip("/"))


def database_path_from_env(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    url = env.get("DATABASE_URL", "").strip()
    if not url:
        raise ConfigError(
            "DATABASE_URL is not set (expected sqlite:////absolute/path/app.db)"
        )
    return parse_database_url(url)


def _parse_port(raw: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"PORT must be an integer between 1 and 65535, got {raw!r}")
    return int(raw)


def _check_secret(secret: str, app_env: str) -> str:
    if not secret:
        raise ConfigError("JWT_SECRET is not set")
    if app_env == "production" and len(secret) < MIN_PRODUCTION_SECRET:
        raise ConfigError(
            f"JWT_SECRET must be at least {MIN_PRODUCTION_SECRET} characters"
            " in production"
        )
    return secret


def _previous_secrets(raw: str, current: str, app_env: str) -> tuple[str, ...]:
    previous = []
    for secret in (part.strip() for part in raw.split(",")):
        if secret and secret != current and secret not in previous:
            if app_env == "production" and len(secret) < MIN_PRODUCTION_SECRET:
                raise ConfigError(
                    f"every JWT_PREVIOUS_SECRETS entry must be at least"
                    f" {MIN_PRODUCTION_SECRET} characters in production"
                )
            previous.append(secret)
    return tuple(previous)


def password_iterations_from_env(env: Mapping[str, str] | None = None) -> int:
    """PBKDF2 iterations for new hashes; lowering them is refused in production."""
    env = os.environ if env is None else env
    raw = env.get("PASSWORD_HASH_ITERATIONS", str(PBKDF2_ITERATIONS)).strip()
    app_env = env.get("APP_ENV", "development").strip() or "development"
    if not raw.isdigit() or int(raw) < 1000:
        raise ConfigError(f"PASSWORD_HASH_ITERATIONS must be >= 1000, got {raw!r}")
    if app_env == "production" and int(raw) < PBKDF2_ITERATIONS:
        raise ConfigError(
            f"PASSWORD_HASH_ITERATIONS below {PBKDF2_ITERATIONS} is for tests only"
        )
    return int(raw)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from env (os.environ by default) or raise ConfigError."""
    env = os.environ if env is None else env
    app_env = env.get("APP_ENV", "development").strip() or "development"
    if app_env not in ENVIRONMENTS:
        raise ConfigError(f"APP_ENV must be one of {', '.join(ENVIRONMENTS)}")
    origins = env.get("CORS_ORIGINS", "")
    ttl = env.get("JWT_TTL_SECONDS", "3600")
    if not ttl.isdigit() or int(ttl) == 0:
        raise ConfigError(f"JWT_TTL_SECONDS must be a positive integer, got {ttl!r}")
    secret = _check_secret(env.get("JWT_SECRET", ""), app_env)
    return Settings(
        database_path=database_path_from_env(env),
        jwt_secret=secret,
        jwt_previous_secrets=_previous_secrets(
            env.get("JWT_PREVIOUS_SECRETS", ""), secret, app_env
        ),
        app_env=app_env,
        cors_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
        host=env.get("HOST", "127.0.0.1").strip() or "127.0.0.1",
        port=_parse_port(env.get("PORT", "8080").strip()),
        token_ttl_seconds=int(ttl),
        password_iterations=password_iterations_from_env(env),
    )
