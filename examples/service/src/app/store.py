"""Accounts and trades: the SQL behind the API and the admin CLI.

The money side of a trade (cash, fees) is the release's `ledger` module, the part
that changes from release to release. Raises InvalidInputError / ConflictError for
requests the data refuses; it knows nothing about HTTP status codes (api.py maps
them).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import Any

import ledger
from auth import PBKDF2_ITERATIONS, hash_password, verify_password
from database import transaction
from errors import ConflictError, InvalidInputError

__all__ = ["ConflictError", "InvalidInputError", "User"]

PRICES_CENTS = {"ACME": 1250, "GLOBEX": 4200, "INITECH": 725, "UMBRELLA": 9999}
MAX_QTY = 1_000_000
MIN_PASSWORD = 8
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# The queries /test-db runs: every table this release reads must answer.
PROBE_QUERIES = (
    "SELECT COUNT(*) FROM users",
    "SELECT COUNT(*) FROM trades WHERE status = 'pending'",
    *ledger.PROBE_QUERIES,
)


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    role: str
    password_hash: str
    created_at: str

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "role": self.role,
            "created_at": self.created_at,
        }


def check_email(email: object) -> str:
    if not isinstance(email, str) or not _EMAIL_RE.match(email) or len(email) > 254:
        raise InvalidInputError("email must be a valid address")
    return email.strip().lower()


def check_password(password: object, minimum: int = MIN_PASSWORD) -> str:
    if not isinstance(password, str) or len(password) < minimum:
        raise InvalidInputError(f"password must be at least {minimum} characters")
    return password


def _user(row: sqlite3.Row | None) -> User | None:
    if row is None:
        return None
    return User(
        row["id"], row["email"], row["role"], row["password_hash"], row["created_at"]
    )


def find_user(conn: sqlite3.Connection, user_id: int) -> User | None:
    return _user(
        conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
    )


def find_user_by_email(conn: sqlite3.Connection, email: str) -> User | None:
    row = conn.execute("SELECT * FROM users WHERE email = ?", (email,)).fetchone()
    return _user(row)


def _insert_user(
    conn: sqlite3.Connection, email: str, password_hash: str, role: str
) -> int:
    try:
        cursor = conn.execute(
            "INSERT INTO users (email, password_hash, role) VALUES (?, ?, ?)",
            (email, password_hash, role),
        )
    except sqlite3.IntegrityError as exc:
        raise ConflictError("email already registered") from exc
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def create_user(
    conn: sqlite3.Connection, email: str, password_hash: str, role: str = "user"
) -> User:
    with transaction(conn):
        user_id = _insert_user(conn, email, password_hash, role)
        ledger.open_account(conn, user_id)
    user = find_user(conn, user_id)
    assert user is not None
    return user


def make_admin(conn: sqlite3.Connection, user_id: int, password_hash: str) -> None:
    with transaction(conn):
        conn.execute(
            "UPDATE users SET role = 'admin', password_hash = ? WHERE id = ?",
            (password_hash, user_id),
        )


def _check_trade(symbol: object, qty: object) -> tuple[str, int]:
    if not isinstance(symbol, str) or symbol.upper() not in PRICES_CENTS:
        raise InvalidInputError(f"symbol must be one of {', '.join(PRICES_CENTS)}")
    if isinstance(qty, bool) or not isinstance(qty, int) or qty == 0:
        raise InvalidInputError("qty must be a non-zero integer (negative sells)")
    if abs(qty) > MAX_QTY:
        raise InvalidInputError(f"qty must be at most {MAX_QTY}")
    return symbol.upper(), qty


def _holding(conn: sqlite3.Connection, user_id: int, symbol: str) -> int:
    row = conn.execute(
        "SELECT COALESCE(SUM(qty), 0) FROM trades WHERE user_id = ? AND symbol = ?",
        (user_id, symbol),
    ).fetchone()
    return int(row[0])


def place_trade(
    conn: sqlite3.Connection, user: User, symbol: object, qty: object
) -> dict[str, Any]:
    """Record a buy (qty > 0) or sell (qty < 0); it waits in the admin queue."""
    symbol, qty = _check_trade(symbol, qty)
    price = PRICES_CENTS[symbol]
    with transaction(conn):
        if qty < 0 and _holding(conn, user.id, symbol) < -qty:
            raise ConflictError(f"not enough {symbol} to sell {-qty}")
        money = ledger.settle(conn, user.id, symbol, price * qty)
        cursor = conn.execute(
            "INSERT INTO trades (user_id, symbol, qty, price_cents)"
            " VALUES (?, ?, ?, ?)",
            (user.id, symbol, qty, price),
        )
    return {
        "id": cursor.lastrowid,
        "symbol": symbol,
        "qty": qty,
        "price_cents": price,
        "status": "pending",
        **money,
    }


def wallet(conn: sqlite3.Connection, user: User) -> dict[str, Any]:
    rows = conn.execute(
        "SELECT symbol, SUM(qty) AS qty FROM trades WHERE user_id = ?"
        " GROUP BY symbol HAVING SUM(qty) <> 0 ORDER BY symbol",
        (user.id,),
    ).fetchall()
    return {
        "positions": {row["symbol"]: row["qty"] for row in rows},
        **ledger.balances(conn, user.id),
    }


def pending_trades(conn: sqlite3.Connection, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT t.id, u.email, t.symbol, t.qty, t.price_cents, t.created_at"
        " FROM trades t JOIN users u ON u.id = t.user_id"
        " WHERE t.status = 'pending' ORDER BY t.id LIMIT ?",
        (limit,),
    ).fetchall()
    return [dict(row) for row in rows]


def probe(conn: sqlite3.Connection) -> None:
    """Run every query this release depends on; raises sqlite3.Error if one fails."""
    for query in PROBE_QUERIES:
        conn.execute(query).fetchall()


def ensure_admin(
    conn: sqlite3.Connection,
    email: str,
    password: str,
    *,
    iterations: int = PBKDF2_ITERATIONS,
) -> str:
    """Make `email` an admin with `password`; says what changed.

    `created` (new account), `promoted` (existing user, now admin with this
    password), `updated` (already admin, password changed) or `unchanged`.
    """
    user = find_user_by_email(conn, email)
    if user is None:
        create_user(
            conn, email, hash_password(password, iterations=iterations), role="admin"
        )
        return "created"
    if user.role != "admin":
        make_admin(conn, user.id, hash_password(password, iterations=iterations))
        return "promoted"
    if verify_password(password, user.password_hash):
        return "unchanged"
    make_admin(conn, user.id, hash_password(password, iterations=iterations))
    return "updated"
