-- 0018: upstream sign-in (issue 14). SQLite's 0018 is its twin;
-- TestSchemaParity keeps them equal.
--
-- Connectors to upstream identity providers (agentid connectors, the
-- config file's connectors:). The id is unique across the hub: the login
-- page offers connectors before any tenant is known. The client secret is
-- a file path or sealed by the key-encryption key, never in clear.
CREATE TABLE connectors (
    id                   text        NOT NULL PRIMARY KEY,
    tenant_id            text        NOT NULL,
    type                 text        NOT NULL,
    name                 text        NOT NULL DEFAULT '',
    issuer               text        NOT NULL,
    client_id            text        NOT NULL,
    client_secret_file   text        NOT NULL DEFAULT '',
    client_secret_sealed bytea,
    scopes               text[],
    username_claim       text        NOT NULL DEFAULT '',
    email_claim          text        NOT NULL DEFAULT '',
    name_claim           text        NOT NULL DEFAULT '',
    groups_claim         text        NOT NULL DEFAULT '',
    roles_claim          text        NOT NULL DEFAULT '',
    -- user attribute name → claim name
    attribute_claims     jsonb,
    disabled             boolean     NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);
CREATE INDEX connectors_tenant ON connectors (tenant_id, id);

-- Email domains that route a person to a connector: one connector each.
CREATE TABLE connector_domains (
    domain       text NOT NULL PRIMARY KEY,
    connector_id text NOT NULL REFERENCES connectors (id) ON DELETE CASCADE
);
CREATE INDEX connector_domains_connector ON connector_domains (connector_id);

-- The connector a user signs in through and their subject there. Constant
-- defaults: no table rewrite.
ALTER TABLE users ADD COLUMN connector_id text NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN external_subject text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX users_external ON users (tenant_id, connector_id, external_subject) WHERE connector_id <> '';
