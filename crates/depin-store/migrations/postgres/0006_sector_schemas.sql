-- Tables owned by sector crates (issue 8): each sector ships its own
-- migrations, numbered in its sector's block (code × 1000 … + 999, the same
-- block as its payload kinds), applied by Store::apply_sector_schema when a
-- coordinator starts with the sector's plugin. They are recorded here rather
-- than in sqlx's table, so a store opened without a sector's plugin (an
-- audit, another tool) still opens.
CREATE TABLE sector_migrations (
    version     BIGINT PRIMARY KEY,
    sector      BIGINT NOT NULL,
    description TEXT NOT NULL,
    checksum    BYTEA NOT NULL            -- blake3 of the SQL as applied
);
