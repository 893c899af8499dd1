-- The sector seam (issue 8): reward lines keyed per sector, versioned
-- verifier state, and work the coordinator orders from devices.

-- A device has at most one reward line per sector per epoch.
ALTER TABLE reward_lines DROP CONSTRAINT reward_lines_pkey;
ALTER TABLE reward_lines ADD PRIMARY KEY (epoch, device, sector);

-- The format version of the verifier that wrote the state.
ALTER TABLE sector_state ADD COLUMN version BIGINT NOT NULL DEFAULT 0;

-- Work orders a sector verifier issued at an epoch close: a device pulls them
-- (GET /v1/work) and answers with a signed report naming `id` before
-- `deadline_ms`. The close of `due_epoch` (the epoch the deadline falls in)
-- shows the verifier each order with its answer or without one.
CREATE TABLE work (
    id           BYTEA PRIMARY KEY,
    issued_epoch BIGINT NOT NULL,
    sector       BIGINT NOT NULL,
    device       BYTEA NOT NULL,
    answer_kind  BIGINT NOT NULL,
    body         BYTEA NOT NULL,
    deadline_ms  BIGINT NOT NULL,
    due_epoch    BIGINT NOT NULL,
    answer_seq   BIGINT
);
CREATE INDEX work_device ON work (device, deadline_ms);
CREATE INDEX work_due ON work (due_epoch, sector);
