-- 0002: the scopes a client asked for (RFC 7591 §2 scope), kept beside the
-- ceiling the policy's register action allowed of them, so that the ceiling
-- can be recomputed when the policy or the client's tags change.
-- Existing clients asked for at least what they were given.
ALTER TABLE clients ADD COLUMN requested_scopes text[];
UPDATE clients SET requested_scopes = scopes;
