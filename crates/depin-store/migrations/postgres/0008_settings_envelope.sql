-- Operator settings as a signed envelope (issue 8): the settings row keeps the
-- operator's raw SignedEnvelope (kind 7, operator_settings) exactly as
-- received, so anyone can re-verify the stored settings from the bytes that
-- were signed; `body` is the settings document carried inside it and
-- `signed_ms` its envelope timestamp (replaced only by a newer one).
--
-- Rows from before this migration carried a signature over a header-era
-- message (domain tag, operator, timestamp, body), not an envelope, so they
-- cannot be shown in the new form. They are dropped: settings are the
-- operator's own figures and re-sendable at any time (`depin operator settings
-- set`), and until then the operator view uses the defaults, saying so.
DROP TABLE operator_settings;
CREATE TABLE operator_settings (
    operator   BYTEA PRIMARY KEY,
    body       TEXT NOT NULL,
    envelope   BYTEA NOT NULL,
    signed_ms  BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
