"""The money side of a trade in 1.1.0: cash wallets (see wallets.py).

store.py calls these hooks inside its transactions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import wallets

if TYPE_CHECKING:
    import sqlite3

PROBE_QUERIES: tuple[str, ...] = (wallets.PROBE_QUERY,)


def open_account(conn: sqlite3.Connection, user_id: int) -> None:
    wallets.open_wallet(conn, user_id)


def settle(
    conn: sqlite3.Connection, user_id: int, symbol: str, amount_cents: int
) -> dict[str, Any]:
    wallets.move_cash(conn, user_id, amount_cents)
    return {}


def balances(conn: sqlite3.Connection, user_id: int) -> dict[str, Any]:
    return {"cash_cents": wallets.cash_of(conn, user_id)}
