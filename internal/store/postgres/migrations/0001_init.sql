-- 0001: the initial agentid schema.
--
-- Every row carries tenant_id (tables whose entities have no tenant in the
-- store contract default it to the default tenant). Secrets are stored only
-- as SHA-256 hashes (bytea); optional times are NULL when unset.

CREATE TABLE clients (
    tenant_id                  text        NOT NULL,
    id                         text        NOT NULL,
    name                       text        NOT NULL,
    secret_hash                bytea,
    secret_expires_at          timestamptz,
    redirect_uris              text[],
    grant_types                text[],
    response_types             text[],
    token_endpoint_auth_method text        NOT NULL,
    application_type           text        NOT NULL,
    scopes                     text[],
    default_resource           text        NOT NULL,
    jwks                       text        NOT NULL,
    jwks_uri                   text        NOT NULL,
    client_uri                 text        NOT NULL,
    logo_uri                   text        NOT NULL,
    tos_uri                    text        NOT NULL,
    policy_uri                 text        NOT NULL,
    contacts                   text[],
    software_id                text        NOT NULL,
    software_version           text        NOT NULL,
    registration_method        text        NOT NULL,
    registration_token_hash    bytea,
    created_ip                 text        NOT NULL,
    tags                       text[],
    owner_user_id              text        NOT NULL,
    disabled                   boolean     NOT NULL,
    created_at                 timestamptz NOT NULL,
    updated_at                 timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE resources (
    tenant_id              text        NOT NULL,
    uri                    text        NOT NULL,
    id                     text        NOT NULL,
    name                   text        NOT NULL,
    -- Durations in nanoseconds, exactly as time.Duration; 0 means unset.
    access_token_ttl_ns    bigint      NOT NULL,
    consent_max_ttl_ns     bigint      NOT NULL,
    consent_default_ttl_ns bigint      NOT NULL,
    tags                   text[],
    created_at             timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, uri),
    UNIQUE (tenant_id, id)
);

-- One row per tool-level scope of a resource; position keeps the order the
-- admin gave.
CREATE TABLE resource_scopes (
    tenant_id    text    NOT NULL,
    resource_uri text    NOT NULL,
    name         text    NOT NULL,
    position     integer NOT NULL,
    description  text    NOT NULL,
    sensitive    boolean NOT NULL,
    PRIMARY KEY (tenant_id, resource_uri, name),
    FOREIGN KEY (tenant_id, resource_uri) REFERENCES resources (tenant_id, uri)
        ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE TABLE users (
    tenant_id     text        NOT NULL,
    id            text        NOT NULL,
    username      text        NOT NULL,
    password_hash text        NOT NULL,
    roles         text[],
    groups        text[],
    disabled      boolean     NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, username)
);

CREATE TABLE signing_keys (
    tenant_id   text        NOT NULL DEFAULT 'default',
    id          text        PRIMARY KEY,
    algorithm   text        NOT NULL,
    public_jwk  text        NOT NULL,
    private_enc bytea       NOT NULL,
    activate_at timestamptz NOT NULL,
    retired_at  timestamptz,
    expires_at  timestamptz,
    created_at  timestamptz NOT NULL
);

CREATE TABLE sessions (
    hash       bytea       PRIMARY KEY,
    tenant_id  text        NOT NULL,
    user_id    text        NOT NULL,
    auth_time  timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE auth_codes (
    hash                  bytea       PRIMARY KEY,
    tenant_id             text        NOT NULL,
    grant_id              text        NOT NULL,
    client_id             text        NOT NULL,
    user_id               text        NOT NULL,
    redirect_uri          text        NOT NULL,
    scopes                text[],
    resource              text        NOT NULL,
    code_challenge        text        NOT NULL,
    code_challenge_method text        NOT NULL,
    nonce                 text        NOT NULL,
    auth_time             timestamptz NOT NULL,
    created_at            timestamptz NOT NULL,
    expires_at            timestamptz NOT NULL,
    consumed_at           timestamptz
);
CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);

CREATE TABLE refresh_tokens (
    hash       bytea       PRIMARY KEY,
    tenant_id  text        NOT NULL,
    grant_id   text        NOT NULL,
    client_id  text        NOT NULL,
    user_id    text        NOT NULL,
    scopes     text[],
    resource   text        NOT NULL,
    auth_time  timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    rotated_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (tenant_id, grant_id);
CREATE INDEX refresh_tokens_client_user ON refresh_tokens (tenant_id, client_id, user_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

-- Recorded JWT access tokens by jti: the revocation denylist, kept until exp.
CREATE TABLE access_tokens (
    jti        text        PRIMARY KEY,
    tenant_id  text        NOT NULL,
    grant_id   text        NOT NULL,
    client_id  text        NOT NULL,
    user_id    text        NOT NULL,
    resource   text        NOT NULL,
    scopes     text[],
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX access_tokens_grant ON access_tokens (tenant_id, grant_id);
CREATE INDEX access_tokens_client_user ON access_tokens (tenant_id, client_id, user_id);
CREATE INDEX access_tokens_expires_at ON access_tokens (expires_at);

-- Single-use JWT ids (client assertions), namespaced by key.
CREATE TABLE used_jtis (
    tenant_id  text        NOT NULL DEFAULT 'default',
    key        text        NOT NULL,
    jti        text        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (key, jti)
);
CREATE INDEX used_jtis_expires_at ON used_jtis (expires_at);

CREATE TABLE consents (
    tenant_id    text        NOT NULL,
    user_id      text        NOT NULL,
    client_id    text        NOT NULL,
    resource     text        NOT NULL,
    scope        text        NOT NULL,
    granted_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    PRIMARY KEY (tenant_id, user_id, client_id, resource, scope)
);
CREATE INDEX consents_client ON consents (tenant_id, client_id);

CREATE TABLE policy_sets (
    tenant_id  text        NOT NULL,
    version    bigint      NOT NULL,
    files      jsonb,
    comment    text        NOT NULL,
    created_by text        NOT NULL,
    created_at timestamptz NOT NULL,
    active     boolean     NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
-- At most one active set per tenant.
CREATE UNIQUE INDEX policy_sets_one_active ON policy_sets (tenant_id) WHERE active;

CREATE TABLE audit_events (
    id         bigserial   PRIMARY KEY,
    tenant_id  text        NOT NULL,
    time       timestamptz NOT NULL,
    type       text        NOT NULL,
    request_id text        NOT NULL,
    client_id  text        NOT NULL,
    user_id    text        NOT NULL,
    resource   text        NOT NULL,
    scopes     text[],
    ip         text        NOT NULL,
    outcome    text        NOT NULL,
    details    jsonb
);
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, id);
CREATE INDEX audit_events_tenant_type ON audit_events (tenant_id, type, id);
CREATE INDEX audit_events_tenant_client ON audit_events (tenant_id, client_id, id);
CREATE INDEX audit_events_tenant_user ON audit_events (tenant_id, user_id, id);
