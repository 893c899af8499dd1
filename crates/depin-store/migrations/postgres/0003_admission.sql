-- Hardening (issue 7): the store decides admission, and keys have one role.

-- Reports stored per device and open epoch: the per-device rate limit is
-- counted here, inside the append transaction, so it holds across restarts
-- and across replicas. Rows of closed epochs are deleted by the close.
CREATE TABLE rate_counts (
    device BYTEA NOT NULL,
    epoch  BIGINT NOT NULL,
    count  BIGINT NOT NULL,
    PRIMARY KEY (device, epoch)
);

-- Every key the registry knows, with its one role: 1 = device, 2 = operator.
-- The primary key makes "a key is never both" hold even when two replicas
-- register at once.
CREATE TABLE key_roles (
    key  BYTEA PRIMARY KEY,
    role BIGINT NOT NULL
);
INSERT INTO key_roles (key, role) SELECT device, 1 FROM devices ON CONFLICT (key) DO NOTHING;
INSERT INTO key_roles (key, role) SELECT DISTINCT operator, 2 FROM devices ON CONFLICT (key) DO NOTHING;

-- Rejections used to be stored under the signer a message claimed, before its
-- signature was checked; those rows prove nothing and are dropped. From now on
-- only rejections of verified messages from registered devices are stored.
DELETE FROM rejections WHERE device NOT IN (SELECT device FROM devices);

-- The write-lock row is no longer needed: writers open with BEGIN IMMEDIATE.
DELETE FROM meta WHERE key = 'write-lock';
