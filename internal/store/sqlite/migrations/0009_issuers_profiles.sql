-- 0009: delegation across hops (issue 11). PostgreSQL's 0009 is its twin;
-- TestSchemaParity keeps them equal.
--
-- A person's OpenID Connect profile as an administrator entered it: name,
-- email address and whether the administrator vouches for the address.
-- Existing users have none.
ALTER TABLE users ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0;
-- A trusted issuer's assertions name a user by email (Issuer.UserClaim).
CREATE INDEX users_email ON users (tenant_id, email) WHERE email <> '';

-- The trusted issuer (issuers.id) whose workload JWTs authenticate a
-- workload client; '' for every other client.
ALTER TABLE clients ADD COLUMN federated_issuer TEXT NOT NULL DEFAULT '';

-- Trusted issuers of JWTs (agentid issuers). Lists are JSON arrays of
-- strings, rules a JSON array of store.IssuerRule, the maximum lifetime
-- nanoseconds (time.Duration; 0: the default).
CREATE TABLE issuers (
    tenant_id       TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    issuer          TEXT    NOT NULL,
    jwks_uri        TEXT    NOT NULL DEFAULT '',
    jwks            TEXT    NOT NULL DEFAULT '',
    audiences       TEXT    NOT NULL DEFAULT '[]',
    algorithms      TEXT    NOT NULL DEFAULT '[]',
    uses            TEXT    NOT NULL DEFAULT '[]',
    max_lifetime_ns INTEGER NOT NULL DEFAULT 0,
    user_claim      TEXT    NOT NULL DEFAULT '',
    rules           TEXT    NOT NULL DEFAULT '[]',
    disabled        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER,
    updated_at      INTEGER,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, issuer)
);
