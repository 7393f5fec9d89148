-- 0018: upstream sign-in (issue 14). PostgreSQL's 0018 is its twin;
-- TestSchemaParity keeps them equal.
--
-- Connectors to upstream identity providers (agentid connectors, the
-- config file's connectors:). The id is unique across the hub: the login
-- page offers connectors before any tenant is known. The client secret is
-- a file path or sealed by the key-encryption key, never in clear.
CREATE TABLE connectors (
    id                   TEXT    NOT NULL PRIMARY KEY,
    tenant_id            TEXT    NOT NULL,
    type                 TEXT    NOT NULL,
    name                 TEXT    NOT NULL DEFAULT '',
    issuer               TEXT    NOT NULL,
    client_id            TEXT    NOT NULL,
    client_secret_file   TEXT    NOT NULL DEFAULT '',
    client_secret_sealed BLOB,
    scopes               TEXT    NOT NULL DEFAULT '[]',
    username_claim       TEXT    NOT NULL DEFAULT '',
    email_claim          TEXT    NOT NULL DEFAULT '',
    name_claim           TEXT    NOT NULL DEFAULT '',
    groups_claim         TEXT    NOT NULL DEFAULT '',
    roles_claim          TEXT    NOT NULL DEFAULT '',
    -- user attribute name → claim name, a JSON object
    attribute_claims     TEXT    NOT NULL DEFAULT '{}',
    disabled             INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER,
    updated_at           INTEGER
);
CREATE INDEX connectors_tenant ON connectors (tenant_id, id);

-- Email domains that route a person to a connector: one connector each.
CREATE TABLE connector_domains (
    domain       TEXT NOT NULL PRIMARY KEY,
    connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE
);
CREATE INDEX connector_domains_connector ON connector_domains (connector_id);

-- The connector a user signs in through and their subject there.
ALTER TABLE users ADD COLUMN connector_id TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN external_subject TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX users_external ON users (tenant_id, connector_id, external_subject) WHERE connector_id <> '';
