from __future__ import annotations

import shutil
import tempfile
import unittest
from pathlib import Path

from support import call, make_api, migrated_db, register_and_login


class WalletTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.tmp)
        self.api = make_api(migrated_db(self.tmp))

    def test_accounts_open_with_cash(self) -> None:
        token = register_and_login(self.api, "new@example.test")
        status, wallet = call(self.api, "GET", "/wallet", token=token)
        self.assertEqual((status, wallet["cash_cents"]), (200, 1_000_000))

    def test_trades_move_cash_by_cost_plus_fee(self) -> None:
        token = register_and_login(self.api, "cash@example.test")
        _, before = call(self.api, "GET", "/wallet", token=token)
        payload = {"symbol": "GLOBEX", "qty": 3}
        _, trade = call(self.api, "POST", "/trade", payload, token=token)
        _, after = call(self.api, "GET", "/wallet", token=token)
        fee = trade.get("fee_cents", 0)
        self.assertEqual(before["cash_cents"] - after["cash_cents"], 3 * 4200 + fee)

    def test_buying_beyond_cash_is_a_conflict(self) -> None:
        token = register_and_login(self.api, "poor@example.test")
        payload = {"symbol": "UMBRELLA", "qty": 100_000}
        status, body = call(self.api, "POST", "/trade", payload, token=token)
        self.assertEqual(status, 409, body)
        _, wallet = call(self.api, "GET", "/wallet", token=token)
        self.assertEqual(wallet["positions"], {})


if __name__ == "__main__":
    unittest.main()
