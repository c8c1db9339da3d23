-- The secrets key's epoch. The key check's settings row carries a version that every
-- change of the key check (a rotation) moves on; each secret records the epoch it was
-- sealed under. A write sealed under an earlier epoch is refused inside its own
-- transaction, so no value is stored under a key that a committed rotation replaced.
ALTER TABLE settings ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE secrets ADD COLUMN key_epoch BIGINT NOT NULL DEFAULT 0;
