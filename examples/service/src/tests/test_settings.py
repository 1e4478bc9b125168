from __future__ import annotations

import unittest
from pathlib import Path

import support  # noqa: F401  (puts app/ on sys.path)
from settings import ConfigError, load_settings, parse_database_url

GOOD = {"DATABASE_URL": "sqlite:////srv/app.db", "JWT_SECRET": "dev"}


class SettingsTest(unittest.TestCase):
    def test_both_url_spellings_name_an_absolute_path(self) -> None:
        self.assertEqual(
            parse_database_url("sqlite:////srv/app.db"), Path("/srv/app.db")
        )
        self.assertEqual(
            parse_database_url("sqlite:///srv/app.db"), Path("/srv/app.db")
        )

    def test_missing_database_url_is_refused(self) -> None:
        with self.assertRaisesRegex(ConfigError, "DATABASE_URL is not set"):
            load_settings({"JWT_SECRET": "x"})

    def test_non_sqlite_url_is_refused(self) -> None:
        with self.assertRaisesRegex(ConfigError, "sqlite"):
            load_settings({**GOOD, "DATABASE_URL": "postgres://db/app"})

    def test_missing_secret_is_refused(self) -> None:
        with self.assertRaisesRegex(ConfigError, "JWT_SECRET"):
            load_settings({"DATABASE_URL": GOOD["DATABASE_URL"]})

    def test_production_needs_a_long_secret(self) -> None:
        with self.assertRaisesRegex(ConfigError, "32 characters"):
            load_settings({**GOOD, "APP_ENV": "production"})
        long_secret = {"JWT_SECRET": "x" * 32, "APP_ENV": "production"}
        self.assertEqual(load_settings({**GOOD, **long_secret}).app_env, "production")

    def test_defaults_and_cors_list(self) -> None:
        settings = load_settings({**GOOD, "CORS_ORIGINS": "https://a.test, https://b"})
        self.assertEqual(settings.cors_origins, ("https://a.test", "https://b"))
        self.assertEqual((settings.host, settings.port), ("127.0.0.1", 8080))


if __name__ == "__main__":
    unittest.main()
