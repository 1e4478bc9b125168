"""Cash wallets (1.1.0): every account opens with 10,000.00; trades move cash."""

from __future__ import annotations

from typing import TYPE_CHECKING

from errors import ConflictError

if TYPE_CHECKING:
    import sqlite3

OPENING_CASH_CENTS = 1_000_000
PROBE_QUERY = "SELECT COUNT(*) FROM wallets"


def open_wallet(conn: sqlite3.Connection, user_id: int) -> None:
    conn.execute(
        "INSERT INTO wallets (user_id, cash_cents) VALUES (?, ?)",
        (user_id, OPENING_CASH_CENTS),
    )


def move_cash(conn: sqlite3.Connection, user_id: int, cost_cents: int) -> None:
    """Debit a buy (positive cost) or credit a sell; refuses to go below zero."""
    cursor = conn.execute(
        "UPDATE wallets SET cash_cents = cash_cents - ?"
        " WHERE user_id = ? AND cash_cents >= ?",
        (cost_cents, user_id, cost_cents),
    )
    if cursor.rowcount != 1:
        raise ConflictError("not enough cash for this trade")


def cash_of(conn: sqlite3.Connection, user_id: int) -> int:
    row = conn.execute(
        "SELECT cash_cents FROM wallets WHERE user_id = ?", (user_id,)
    ).fetchone()
    return 0 if row is None else int(row[0])
