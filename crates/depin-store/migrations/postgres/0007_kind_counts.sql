-- Per-kind rate limits (issue 8): reports stored per device, open epoch and
-- payload kind, for the kinds the policy limits (`max_reports_per_kind`).
-- Counted inside the append transaction like rate_counts, so the limit holds
-- across restarts and replicas; rows of closed epochs are deleted by the close.
CREATE TABLE kind_counts (
    device BYTEA NOT NULL,
    epoch  BIGINT NOT NULL,
    kind   BIGINT NOT NULL,
    count  BIGINT NOT NULL,
    PRIMARY KEY (device, epoch, kind)
);
