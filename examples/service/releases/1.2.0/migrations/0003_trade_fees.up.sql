-- Per-symbol trading fees in basis points ('*' is the default).
--
-- Known defect, kept on purpose for rollback drills: the 1.2.0 code reads
-- fee_schedule.fee_rate_bps, but this migration names the column fee_bps. The
-- migration applies and reverts cleanly; /test-db and /trade fail afterwards.
CREATE TABLE fee_schedule (
    symbol TEXT PRIMARY KEY,
    fee_bps INTEGER NOT NULL CHECK (fee_bps >= 0)
);

INSERT INTO fee_schedule (symbol, fee_bps) VALUES ('*', 10);
