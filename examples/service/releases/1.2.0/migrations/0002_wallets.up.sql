-- Cash balances. Every existing account gets the opening balance.
CREATE TABLE wallets (
    user_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    cash_cents INTEGER NOT NULL CHECK (cash_cents >= 0)
);

INSERT INTO wallets (user_id, cash_cents) SELECT id, 1000000 FROM users;
