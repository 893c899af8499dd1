-- Data credits and withdrawals (issue 8, the rest of the consumer seam).
-- Every movement of tokens is also a ledger entry in ledger_entries; these
-- tables hold what the ledger cannot: the token price, the credits (not
-- tokens: they never leave the consumer), and the payouts owed on chain.

-- The token's USD price as whoever runs the coordinator recorded it
-- (`depin price set`). Append-only: the price in force at time t is the row
-- with the latest effective_ms <= t (the highest id among equals).
CREATE TABLE token_prices (
    id           BIGSERIAL PRIMARY KEY,
    effective_ms BIGINT  NOT NULL,
    usd_micro    BIGINT  NOT NULL,       -- micro-USD per whole token
    source       TEXT NOT NULL,
    recorded_ms  BIGINT  NOT NULL
);
CREATE INDEX token_prices_effective ON token_prices (effective_ms, id);

-- A consumer's purchase of data credits, once per (consumer, purchase_id):
-- the same purchase again answers with this row; other terms are refused.
-- `burned` base units left the consumer's free escrow (ledger kind
-- credit_burn) at the prices recorded here.
CREATE TABLE credit_purchases (
    consumer               BYTEA NOT NULL,
    purchase_id            BIGINT  NOT NULL,
    credits                BIGINT  NOT NULL,
    max_burn               BIGINT  NOT NULL,
    burned                 BIGINT  NOT NULL,
    token_price_micro_usd  BIGINT  NOT NULL,
    credit_price_micro_usd BIGINT  NOT NULL,
    envelope               BYTEA NOT NULL,   -- the consumer's signed purchase, as received
    recorded_ms            BIGINT  NOT NULL,
    PRIMARY KEY (consumer, purchase_id)
);

-- Credits held: bought minus spent. Never negative (the spend's UPDATE is
-- conditional, and the CHECK stops anything else).
CREATE TABLE credit_balances (
    consumer BYTEA PRIMARY KEY,
    credits  BIGINT  NOT NULL CHECK (credits >= 0)
);

-- Credits spent on service (wireless data, sensor queries), once per
-- (consumer, purpose): a retried spend is not charged twice.
CREATE TABLE credit_spends (
    consumer BYTEA NOT NULL,
    purpose  TEXT NOT NULL,
    credits  BIGINT  NOT NULL,
    spent_ms BIGINT  NOT NULL,
    PRIMARY KEY (consumer, purpose)
);

-- Free escrow a consumer asked to take out to a chain address, once per
-- (consumer, withdrawal_id). The ledger entry (withdraw, escrow → external)
-- is written when it is asked for; the runner pays it out on chain and
-- records the chain reference (`depin escrow paid`); until then it is pending.
CREATE TABLE withdrawals (
    consumer      BYTEA NOT NULL,
    withdrawal_id BIGINT  NOT NULL,
    amount        BIGINT  NOT NULL,
    destination   BYTEA NOT NULL,
    envelope      BYTEA NOT NULL,         -- the consumer's signed withdrawal, as received
    requested_ms  BIGINT  NOT NULL,
    paid_ref      TEXT,                  -- chain transaction, once paid
    paid_ms       BIGINT,
    PRIMARY KEY (consumer, withdrawal_id)
);
CREATE INDEX withdrawals_pending ON withdrawals (paid_ms, requested_ms);
