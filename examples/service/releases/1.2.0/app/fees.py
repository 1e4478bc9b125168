"""Trading fees (1.2.0): a rate in basis points per symbol, '*' for the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3

PROBE_QUERY = "SELECT symbol, fee_rate_bps FROM fee_schedule LIMIT 1"


def fee_cents(conn: sqlite3.Connection, symbol: str, amount_cents: int) -> int:
    """The fee on a trade of `amount_cents`: the symbol's rate, else the '*' rate."""
    row = conn.execute(
        "SELECT fee_rate_bps FROM fee_schedule WHERE symbol IN (?, '*')"
        " ORDER BY symbol = '*' LIMIT 1",
        (symbol,),
    ).fetchone()
    return 0 if row is None else abs(amount_cents) * int(row[0]) // 10_000
