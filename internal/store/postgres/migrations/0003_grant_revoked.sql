-- 0003: a replayed authorization code marks its grant revoked, so that the
-- tokens the first exchange is still issuing are refused (RFC 6749 §4.1.2:
-- everything issued from a replayed code is revoked, including what is
-- issued after the replay was detected).
ALTER TABLE auth_codes ADD COLUMN grant_revoked_at timestamptz;
CREATE INDEX auth_codes_grant ON auth_codes (tenant_id, grant_id);
