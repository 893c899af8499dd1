-- Backbone schema. Each sector adds its own tables in later migrations.
-- Integers are 64-bit; amounts are base units (u64 fits in i64 for any
-- realistic supply: 9.2e12 whole tokens).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Every reward policy the network ever used, by id, with its canonical bytes,
-- so a closed epoch can be recomputed under the policy it was closed with.
CREATE TABLE policies (
    policy_id TEXT PRIMARY KEY,
    body      BLOB NOT NULL
);

CREATE TABLE devices (
    device           BLOB PRIMARY KEY,
    operator         BLOB NOT NULL,
    sector           INTEGER NOT NULL,
    hardware_class   TEXT NOT NULL,
    firmware_version TEXT NOT NULL,
    lat_micro        INTEGER,
    lon_micro        INTEGER,
    h3_cell          INTEGER,
    certificate      BLOB NOT NULL,      -- the raw signed certificate envelope
    registered_ms    INTEGER NOT NULL,
    revoked_ms       INTEGER,
    replaced_by      BLOB,
    last_seq         INTEGER             -- highest accepted sequence number
);
CREATE INDEX devices_operator ON devices (operator);

-- The report log: raw signed bytes exactly as received, plus the few columns
-- the epoch close aggregates on. Recomputing an epoch reads only this table,
-- the device registry and the policy.
CREATE TABLE reports (
    device       BLOB NOT NULL,
    seq          INTEGER NOT NULL,
    epoch        INTEGER NOT NULL,
    kind         INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    -- The coordinator's clock when the report arrived: uptime counts only
    -- heartbeats that arrived on time (see RewardPolicy::max_heartbeat_delay_seconds).
    received_ms  INTEGER NOT NULL,
    raw          BLOB NOT NULL,
    PRIMARY KEY (device, seq)
);
-- Covers the epoch close's aggregate, so it never reads the raw bytes.
CREATE INDEX reports_epoch_kind_device ON reports (epoch, kind, device, timestamp_ms, received_ms);

-- Latest telemetry per device, for the operator view and alerts.
CREATE TABLE telemetry (
    device             BLOB PRIMARY KEY,
    timestamp_ms       INTEGER NOT NULL,
    uptime_s           INTEGER NOT NULL,
    temperature_centi_c INTEGER NOT NULL,
    firmware_version   TEXT NOT NULL,
    power_mw           INTEGER NOT NULL
);

-- Rejected messages, counted by epoch and reason (device may be unknown).
CREATE TABLE rejections (
    epoch  INTEGER NOT NULL,
    reason TEXT NOT NULL,
    device BLOB NOT NULL,                -- 32 zero bytes when not attributable
    count  INTEGER NOT NULL,
    PRIMARY KEY (epoch, reason, device)
);

CREATE TABLE epochs (
    epoch       INTEGER PRIMARY KEY,
    policy_id   TEXT NOT NULL,
    closed_ms   INTEGER NOT NULL,
    emission    INTEGER NOT NULL,
    minted      INTEGER NOT NULL,
    fees        INTEGER NOT NULL,
    burned      INTEGER NOT NULL,
    devices     INTEGER NOT NULL,
    sheet_hash  BLOB NOT NULL,
    claim_root  BLOB NOT NULL
);

CREATE TABLE sector_totals (
    epoch       INTEGER NOT NULL,
    sector      INTEGER NOT NULL,
    emission    INTEGER NOT NULL,
    distributed INTEGER NOT NULL,
    devices     INTEGER NOT NULL,
    rewarded    INTEGER NOT NULL,
    PRIMARY KEY (epoch, sector)
);

CREATE TABLE reward_lines (
    epoch     INTEGER NOT NULL,
    device    BLOB NOT NULL,
    operator  BLOB NOT NULL,
    sector    INTEGER NOT NULL,
    score_ppm INTEGER NOT NULL,
    weight    INTEGER NOT NULL,
    reward    INTEGER NOT NULL,
    fees      INTEGER NOT NULL,
    reasons   TEXT NOT NULL,             -- comma-separated reason codes
    PRIMARY KEY (epoch, device)
);
CREATE INDEX reward_lines_operator ON reward_lines (operator, epoch);

-- Append-only double-entry ledger.
CREATE TABLE ledger_entries (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    epoch  INTEGER NOT NULL,
    debit  TEXT NOT NULL,
    credit TEXT NOT NULL,
    amount INTEGER NOT NULL,
    kind   TEXT NOT NULL
);
CREATE INDEX ledger_entries_epoch ON ledger_entries (epoch);

-- Running balances derived from ledger_entries, kept in the same transaction.
CREATE TABLE balances (
    account TEXT PRIMARY KEY,
    balance INTEGER NOT NULL
);

-- Cumulative claimable amount per account as of each closed epoch: the leaves
-- of that epoch's claim tree.
CREATE TABLE claims (
    epoch      INTEGER NOT NULL,
    account    BLOB NOT NULL,
    cumulative INTEGER NOT NULL,
    PRIMARY KEY (epoch, account)
);

-- Opaque per-sector state carried from one epoch to the next.
CREATE TABLE sector_state (
    sector TEXT NOT NULL,
    epoch  INTEGER NOT NULL,
    state  BLOB NOT NULL,
    PRIMARY KEY (sector, epoch)
);

-- A row every writer touches first, so SQLite hands out the write lock before
-- any read in the transaction (see Store::append_reports).
INSERT INTO meta (key, value) VALUES ('write-lock', '');
