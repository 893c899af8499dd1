-- Consumers' money besides emission (issue 8): deposits credited from an
-- external payment reference, orders that lock escrow for one sector's
-- service, and the usage charged against them at epoch close. The ledger
-- entries themselves live in ledger_entries like every other movement.

-- A deposit is recorded once per external reference (a payment id, a chain
-- transaction): crediting the same reference again changes nothing, and the
-- same reference with another consumer or amount is refused.
CREATE TABLE deposits (
    external_ref TEXT PRIMARY KEY,
    consumer     BLOB NOT NULL,
    amount       INTEGER NOT NULL,
    recorded_ms  INTEGER NOT NULL
);

-- A consumer's lock of escrow for service in one sector. The close of every
-- epoch in [first_epoch, last_epoch] may charge it; the close of last_epoch
-- refunds what is left. `terms` are sector-defined bytes (what was bought).
CREATE TABLE orders (
    consumer    BLOB NOT NULL,
    order_id    INTEGER NOT NULL,
    sector      INTEGER NOT NULL,
    amount      INTEGER NOT NULL,
    first_epoch INTEGER NOT NULL,
    last_epoch  INTEGER NOT NULL,
    terms       BLOB NOT NULL,
    envelope    BLOB NOT NULL,           -- the consumer's signed lock, as received
    recorded_ms INTEGER NOT NULL,
    PRIMARY KEY (consumer, order_id)
);
CREATE INDEX orders_open ON orders (sector, last_epoch);

-- Usage a sector verifier charged against an order at an epoch close, one row
-- per (order, device) share; settled in the same close.
CREATE TABLE charges (
    epoch    INTEGER NOT NULL,
    consumer BLOB NOT NULL,
    order_id INTEGER NOT NULL,
    device   BLOB NOT NULL,
    operator BLOB NOT NULL,
    sector   INTEGER NOT NULL,
    gross    INTEGER NOT NULL,
    PRIMARY KEY (epoch, consumer, order_id, device)
);
CREATE INDEX charges_order ON charges (consumer, order_id, epoch);
