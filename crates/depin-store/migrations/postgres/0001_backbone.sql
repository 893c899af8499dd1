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
    body      BYTEA NOT NULL
);

CREATE TABLE devices (
    device           BYTEA PRIMARY KEY,
    operator         BYTEA NOT NULL,
    sector           BIGINT NOT NULL,
    hardware_class   TEXT NOT NULL,
    firmware_version TEXT NOT NULL,
    lat_micro        BIGINT,
    lon_micro        BIGINT,
    h3_cell          BIGINT,
    certificate      BYTEA NOT NULL,      -- the raw signed certificate envelope
    registered_ms    BIGINT NOT NULL,
    revoked_ms       BIGINT,
    replaced_by      BYTEA,
    last_seq         BIGINT             -- highest accepted sequence number
);
CREATE INDEX devices_operator ON devices (operator);

-- The report log: raw signed bytes exactly as received, plus the few columns
-- the epoch close aggregates on. Recomputing an epoch reads only this table,
-- the device registry and the policy.
CREATE TABLE reports (
    device       BYTEA NOT NULL,
    seq          BIGINT NOT NULL,
    epoch        BIGINT NOT NULL,
    kind         BIGINT NOT NULL,
    timestamp_ms BIGINT NOT NULL,
    -- The coordinator's clock when the report arrived: uptime counts only
    -- heartbeats that arrived on time (see RewardPolicy::max_heartbeat_delay_seconds).
    received_ms  BIGINT NOT NULL,
    raw          BYTEA NOT NULL,
    PRIMARY KEY (device, seq)
);
-- Covers the epoch close's aggregate, so it never reads the raw bytes.
CREATE INDEX reports_epoch_kind_device ON reports (epoch, kind, device, timestamp_ms, received_ms);

-- Latest telemetry per device, for the operator view and alerts.
CREATE TABLE telemetry (
    device             BYTEA PRIMARY KEY,
    timestamp_ms       BIGINT NOT NULL,
    uptime_s           BIGINT NOT NULL,
    temperature_centi_c BIGINT NOT NULL,
    firmware_version   TEXT NOT NULL,
    power_mw           BIGINT NOT NULL
);

-- Rejected messages, counted by epoch and reason (device may be unknown).
CREATE TABLE rejections (
    epoch  BIGINT NOT NULL,
    reason TEXT NOT NULL,
    device BYTEA NOT NULL,                -- 32 zero bytes when not attributable
    count  BIGINT NOT NULL,
    PRIMARY KEY (epoch, reason, device)
);

CREATE TABLE epochs (
    epoch       BIGINT PRIMARY KEY,
    policy_id   TEXT NOT NULL,
    closed_ms   BIGINT NOT NULL,
    emission    BIGINT NOT NULL,
    minted      BIGINT NOT NULL,
    fees        BIGINT NOT NULL,
    burned      BIGINT NOT NULL,
    devices     BIGINT NOT NULL,
    sheet_hash  BYTEA NOT NULL,
    claim_root  BYTEA NOT NULL
);

CREATE TABLE sector_totals (
    epoch       BIGINT NOT NULL,
    sector      BIGINT NOT NULL,
    emission    BIGINT NOT NULL,
    distributed BIGINT NOT NULL,
    devices     BIGINT NOT NULL,
    rewarded    BIGINT NOT NULL,
    PRIMARY KEY (epoch, sector)
);

CREATE TABLE reward_lines (
    epoch     BIGINT NOT NULL,
    device    BYTEA NOT NULL,
    operator  BYTEA NOT NULL,
    sector    BIGINT NOT NULL,
    score_ppm BIGINT NOT NULL,
    weight    BIGINT NOT NULL,
    reward    BIGINT NOT NULL,
    fees      BIGINT NOT NULL,
    reasons   TEXT NOT NULL,             -- comma-separated reason codes
    PRIMARY KEY (epoch, device)
);
CREATE INDEX reward_lines_operator ON reward_lines (operator, epoch);

-- Append-only double-entry ledger.
CREATE TABLE ledger_entries (
    id     BIGSERIAL PRIMARY KEY,
    epoch  BIGINT NOT NULL,
    debit  TEXT NOT NULL,
    credit TEXT NOT NULL,
    amount BIGINT NOT NULL,
    kind   TEXT NOT NULL
);
CREATE INDEX ledger_entries_epoch ON ledger_entries (epoch);

-- Running balances derived from ledger_entries, kept in the same transaction.
CREATE TABLE balances (
    account TEXT PRIMARY KEY,
    balance BIGINT NOT NULL
);

-- Cumulative claimable amount per account as of each closed epoch: the leaves
-- of that epoch's claim tree.
CREATE TABLE claims (
    epoch      BIGINT NOT NULL,
    account    BYTEA NOT NULL,
    cumulative BIGINT NOT NULL,
    PRIMARY KEY (epoch, account)
);

-- Opaque per-sector state carried from one epoch to the next.
CREATE TABLE sector_state (
    sector TEXT NOT NULL,
    epoch  BIGINT NOT NULL,
    state  BYTEA NOT NULL,
    PRIMARY KEY (sector, epoch)
);

INSERT INTO meta (key, value) VALUES ('write-lock', '');
