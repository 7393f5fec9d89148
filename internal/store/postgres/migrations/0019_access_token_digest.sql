-- 0020: the SHA-256 of each access token as minted (docs/design.md §13).
-- SQLite's 0020 is its twin; TestSchemaParity keeps them equal.
--
-- A subject token presented for exchange or retrieval whose SHA-256 equals
-- its record's digest is byte for byte the token the hub signed, so its
-- signature is not verified again. Records written before this migration
-- (and by revocation of an unrecorded token) have none and take the full
-- verification.
ALTER TABLE access_tokens ADD COLUMN token_sha256 BYTEA;
