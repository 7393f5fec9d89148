-- agentid schema, version 1.
-- Every row carries tenant_id. Times are INTEGER unix microseconds (UTC),
-- NULL for "unset". Durations are INTEGER nanoseconds. String lists that SQL
-- never filters on are JSON text.

CREATE TABLE clients (
    tenant_id                  TEXT    NOT NULL,
    id                         TEXT    NOT NULL,
    name                       TEXT    NOT NULL DEFAULT '',
    secret_hash                BLOB,
    secret_expires_at          INTEGER,
    redirect_uris              TEXT    NOT NULL DEFAULT '[]',
    grant_types                TEXT    NOT NULL DEFAULT '[]',
    response_types             TEXT    NOT NULL DEFAULT '[]',
    token_endpoint_auth_method TEXT    NOT NULL DEFAULT '',
    application_type           TEXT    NOT NULL DEFAULT '',
    scopes                     TEXT    NOT NULL DEFAULT '[]',
    default_resource           TEXT    NOT NULL DEFAULT '',
    jwks                       TEXT    NOT NULL DEFAULT '',
    jwks_uri                   TEXT    NOT NULL DEFAULT '',
    client_uri                 TEXT    NOT NULL DEFAULT '',
    logo_uri                   TEXT    NOT NULL DEFAULT '',
    tos_uri                    TEXT    NOT NULL DEFAULT '',
    policy_uri                 TEXT    NOT NULL DEFAULT '',
    contacts                   TEXT    NOT NULL DEFAULT '[]',
    software_id                TEXT    NOT NULL DEFAULT '',
    software_version           TEXT    NOT NULL DEFAULT '',
    registration_method        TEXT    NOT NULL DEFAULT '',
    registration_token_hash    BLOB,
    created_ip                 TEXT    NOT NULL DEFAULT '',
    tags                       TEXT    NOT NULL DEFAULT '[]',
    owner_user_id              TEXT    NOT NULL DEFAULT '',
    disabled                   INTEGER NOT NULL DEFAULT 0,
    created_at                 INTEGER,
    updated_at                 INTEGER,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE resources (
    tenant_id           TEXT    NOT NULL,
    id                  TEXT    NOT NULL,
    uri                 TEXT    NOT NULL,
    name                TEXT    NOT NULL DEFAULT '',
    access_token_ttl    INTEGER NOT NULL DEFAULT 0,
    consent_max_ttl     INTEGER NOT NULL DEFAULT 0,
    consent_default_ttl INTEGER NOT NULL DEFAULT 0,
    tags                TEXT    NOT NULL DEFAULT '[]',
    created_at          INTEGER,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, uri)
);

CREATE TABLE resource_scopes (
    tenant_id   TEXT    NOT NULL,
    resource_id TEXT    NOT NULL,
    position    INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    sensitive   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, resource_id, name),
    FOREIGN KEY (tenant_id, resource_id) REFERENCES resources (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE users (
    tenant_id     TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    username      TEXT    NOT NULL,
    password_hash TEXT    NOT NULL DEFAULT '',
    roles         TEXT    NOT NULL DEFAULT '[]',
    group_names   TEXT    NOT NULL DEFAULT '[]',
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER,
    updated_at    INTEGER,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, username)
);

-- Signing keys are hub-wide today; tenant_id is kept for per-tenant keys.
CREATE TABLE signing_keys (
    tenant_id   TEXT    NOT NULL DEFAULT 'default',
    kid         TEXT    NOT NULL PRIMARY KEY,
    algorithm   TEXT    NOT NULL,
    public_jwk  TEXT    NOT NULL,
    private_enc BLOB,
    activate_at INTEGER,
    retired_at  INTEGER,
    expires_at  INTEGER,
    created_at  INTEGER
);

CREATE TABLE sessions (
    hash       BLOB    NOT NULL PRIMARY KEY,
    tenant_id  TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    auth_time  INTEGER,
    expires_at INTEGER
);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE auth_codes (
    hash                  BLOB    NOT NULL PRIMARY KEY,
    tenant_id             TEXT    NOT NULL,
    grant_id              TEXT    NOT NULL,
    client_id             TEXT    NOT NULL,
    user_id               TEXT    NOT NULL,
    redirect_uri          TEXT    NOT NULL DEFAULT '',
    scopes                TEXT    NOT NULL DEFAULT '[]',
    resource              TEXT    NOT NULL DEFAULT '',
    code_challenge        TEXT    NOT NULL DEFAULT '',
    code_challenge_method TEXT    NOT NULL DEFAULT '',
    nonce                 TEXT    NOT NULL DEFAULT '',
    auth_time             INTEGER,
    created_at            INTEGER,
    expires_at            INTEGER,
    consumed_at           INTEGER
);
CREATE INDEX auth_codes_expires ON auth_codes (expires_at);

CREATE TABLE refresh_tokens (
    hash       BLOB    NOT NULL PRIMARY KEY,
    tenant_id  TEXT    NOT NULL,
    grant_id   TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    scopes     TEXT    NOT NULL DEFAULT '[]',
    resource   TEXT    NOT NULL DEFAULT '',
    auth_time  INTEGER,
    created_at INTEGER,
    expires_at INTEGER,
    rotated_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX refresh_tokens_grant   ON refresh_tokens (tenant_id, grant_id);
CREATE INDEX refresh_tokens_client  ON refresh_tokens (tenant_id, client_id, user_id);
CREATE INDEX refresh_tokens_user    ON refresh_tokens (tenant_id, user_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

-- One row per issued JWT, so it can be denylisted until it expires. Client
-- credentials tokens have no grant and no user; the partial indexes skip
-- them, which keeps the hot insert cheap.
CREATE TABLE access_tokens (
    jti        TEXT    NOT NULL PRIMARY KEY,
    tenant_id  TEXT    NOT NULL,
    grant_id   TEXT    NOT NULL DEFAULT '',
    client_id  TEXT    NOT NULL DEFAULT '',
    user_id    TEXT    NOT NULL DEFAULT '',
    resource   TEXT    NOT NULL DEFAULT '',
    scopes     TEXT    NOT NULL DEFAULT '[]',
    expires_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX access_tokens_grant   ON access_tokens (tenant_id, grant_id) WHERE grant_id <> '';
CREATE INDEX access_tokens_user    ON access_tokens (tenant_id, user_id, client_id) WHERE user_id <> '';
CREATE INDEX access_tokens_client  ON access_tokens (tenant_id, client_id);
CREATE INDEX access_tokens_expires ON access_tokens (expires_at);

-- Single-use JWT ids (client assertions), namespaced by key.
CREATE TABLE used_jtis (
    tenant_id  TEXT    NOT NULL DEFAULT 'default',
    key        TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (key, jti)
);
CREATE INDEX used_jtis_expires ON used_jtis (expires_at);

CREATE TABLE consents (
    tenant_id    TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    client_id    TEXT    NOT NULL,
    resource     TEXT    NOT NULL,
    scope        TEXT    NOT NULL,
    granted_at   INTEGER,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER,
    PRIMARY KEY (tenant_id, user_id, client_id, resource, scope)
);
CREATE INDEX consents_client ON consents (tenant_id, client_id);

CREATE TABLE policy_sets (
    tenant_id  TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    comment    TEXT    NOT NULL DEFAULT '',
    created_by TEXT    NOT NULL DEFAULT '',
    created_at INTEGER,
    active     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, version)
);
-- At most one active version per tenant.
CREATE UNIQUE INDEX policy_sets_active ON policy_sets (tenant_id) WHERE active = 1;

CREATE TABLE policy_files (
    tenant_id TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    name      TEXT    NOT NULL,
    content   TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, version, name),
    FOREIGN KEY (tenant_id, version) REFERENCES policy_sets (tenant_id, version) ON DELETE CASCADE
);

-- The audit trail. id is the rowid: increasing, never reused (rows are only
-- appended).
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY,
    tenant_id  TEXT    NOT NULL,
    time       INTEGER,
    type       TEXT    NOT NULL,
    request_id TEXT    NOT NULL DEFAULT '',
    client_id  TEXT    NOT NULL DEFAULT '',
    user_id    TEXT    NOT NULL DEFAULT '',
    resource   TEXT    NOT NULL DEFAULT '',
    scopes     TEXT    NOT NULL DEFAULT '[]',
    ip         TEXT    NOT NULL DEFAULT '',
    outcome    TEXT    NOT NULL DEFAULT '',
    details    TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, id);
CREATE INDEX audit_events_client ON audit_events (tenant_id, client_id, id) WHERE client_id <> '';
CREATE INDEX audit_events_user   ON audit_events (tenant_id, user_id, id) WHERE user_id <> '';
