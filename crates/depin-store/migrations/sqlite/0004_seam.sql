-- The sector seam (issue 8): reward lines keyed per sector, versioned
-- verifier state, and work the coordinator orders from devices.

-- A device has at most one reward line per sector per epoch.
CREATE TABLE reward_lines_v2 (
    epoch     INTEGER NOT NULL,
    device    BLOB NOT NULL,
    operator  BLOB NOT NULL,
    sector    INTEGER NOT NULL,
    score_ppm INTEGER NOT NULL,
    weight    INTEGER NOT NULL,
    reward    INTEGER NOT NULL,
    fees      INTEGER NOT NULL,
    reasons   TEXT NOT NULL,             -- comma-separated reason codes
    PRIMARY KEY (epoch, device, sector)
);
INSERT INTO reward_lines_v2 SELECT epoch, device, operator, sector, score_ppm, weight, reward, fees, reasons FROM reward_lines;
DROP TABLE reward_lines;
ALTER TABLE reward_lines_v2 RENAME TO reward_lines;
CREATE INDEX reward_lines_operator ON reward_lines (operator, epoch);

-- The format version of the verifier that wrote the state.
ALTER TABLE sector_state ADD COLUMN version INTEGER NOT NULL DEFAULT 0;

-- Work orders a sector verifier issued at an epoch close: a device pulls them
-- (GET /v1/work) and answers with a signed report naming `id` before
-- `deadline_ms`. The close of `due_epoch` (the epoch the deadline falls in)
-- shows the verifier each order with its answer or without one.
CREATE TABLE work (
    id           BLOB PRIMARY KEY,
    issued_epoch INTEGER NOT NULL,
    sector       INTEGER NOT NULL,
    device       BLOB NOT NULL,
    answer_kind  INTEGER NOT NULL,
    body         BLOB NOT NULL,
    deadline_ms  INTEGER NOT NULL,
    due_epoch    INTEGER NOT NULL,
    answer_seq   INTEGER                 -- the device's accepted answer report
);
CREATE INDEX work_device ON work (device, deadline_ms);
CREATE INDEX work_due ON work (due_epoch, sector);
