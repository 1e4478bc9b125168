"""The money side of a trade in 1.0.0: there is none yet, only positions.

store.py calls these hooks inside its transactions. This module is what each
release replaces (1.1.0: cash wallets; 1.2.0: trading fees).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3

# Extra queries /test-db runs for the tables this module reads.
PROBE_QUERIES: tuple[str, ...] = ()


def open_account(conn: sqlite3.Connection, user_id: int) -> None:
    """Nothing to open before 1.1.0."""


def settle(
    conn: sqlite3.Connection, user_id: int, symbol: str, amount_cents: int
) -> dict[str, Any]:
    """Pay for a trade of `amount_cents` (negative: a sale); extra trade fields."""
    return {}


def balances(conn: sqlite3.Connection, user_id: int) -> dict[str, Any]:
    """Extra fields of GET /wallet."""
    return {}
