from __future__ import annotations

import shutil
import tempfile
import unittest
from pathlib import Path

from support import call, make_api, migrated_db, register_and_login


class FeeTest(unittest.TestCase):
    """Against tests/fixtures/0003_trade_fees.sql (10 bps on every symbol)."""

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.tmp)
        self.api = make_api(migrated_db(self.tmp))

    def test_a_trade_pays_the_default_rate(self) -> None:
        token = register_and_login(self.api, "fees@example.test")
        payload = {"symbol": "GLOBEX", "qty": 3}
        status, trade = call(self.api, "POST", "/trade", payload, token=token)
        self.assertEqual((status, trade["fee_cents"]), (201, 3 * 4200 * 10 // 10_000))

    def test_test_db_probes_the_fee_schedule(self) -> None:
        status, body = call(self.api, "GET", "/test-db")
        self.assertEqual(status, 200, body)


if __name__ == "__main__":
    unittest.main()
