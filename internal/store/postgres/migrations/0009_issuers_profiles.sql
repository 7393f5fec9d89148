-- 0009: delegation across hops (issue 11). SQLite's 0009 is its twin;
-- TestSchemaParity keeps them equal.
--
-- A person's OpenID Connect profile as an administrator entered it: name,
-- email address and whether the administrator vouches for the address.
-- Existing users have none. Constant defaults: no table rewrite.
ALTER TABLE users ADD COLUMN name text NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN email text NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN email_verified boolean NOT NULL DEFAULT false;
-- A trusted issuer's assertions name a user by email (Issuer.UserClaim).
CREATE INDEX users_email ON users (tenant_id, email) WHERE email <> '';

-- The trusted issuer (issuers.id) whose workload JWTs authenticate a
-- workload client; '' for every other client.
ALTER TABLE clients ADD COLUMN federated_issuer text NOT NULL DEFAULT '';

-- Trusted issuers of JWTs (agentid issuers). Rules are a JSON array of
-- store.IssuerRule, the maximum lifetime nanoseconds (time.Duration; 0:
-- the default).
CREATE TABLE issuers (
    tenant_id       text        NOT NULL,
    id              text        NOT NULL,
    issuer          text        NOT NULL,
    jwks_uri        text        NOT NULL DEFAULT '',
    jwks            text        NOT NULL DEFAULT '',
    audiences       text[],
    algorithms      text[],
    uses            text[],
    max_lifetime_ns bigint      NOT NULL DEFAULT 0,
    user_claim      text        NOT NULL DEFAULT '',
    rules           jsonb,
    disabled        boolean     NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, issuer)
);
