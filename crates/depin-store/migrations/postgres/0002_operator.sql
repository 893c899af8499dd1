-- Live operator view (issue 4, part 5): cost settings, energy integrated from
-- heartbeats, and published firmware versions.

-- An operator's cost settings: the exact JSON body the operator signed, the
-- ed25519 signature over it and the signature's timestamp. A replacement must
-- carry a newer timestamp, so an old signed body cannot be replayed.
CREATE TABLE operator_settings (
    operator   BYTEA PRIMARY KEY,
    body       TEXT NOT NULL,
    signature  BYTEA NOT NULL,
    signed_ms  BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

-- Energy drawn per device, integrated from the power draw of its heartbeats in
-- the report log up to `last_seq` (a cursor: only newer heartbeats are decoded
-- on the next read). energy_uj is milliwatt-milliseconds (microjoules).
CREATE TABLE device_energy (
    device     BYTEA PRIMARY KEY,
    last_seq   BIGINT NOT NULL,
    last_ms    BIGINT NOT NULL,
    energy_uj  BIGINT NOT NULL,
    covered_ms BIGINT NOT NULL,
    heartbeats BIGINT NOT NULL
);

-- The newest published firmware per hardware class; when absent, the newest
-- version seen among registered devices of the class counts.
CREATE TABLE firmware_releases (
    hardware_class TEXT PRIMARY KEY,
    version        TEXT NOT NULL,
    published_ms   BIGINT NOT NULL
);
