-- 0010: the credential vault (issue 12). PostgreSQL's 0010 is its twin;
-- TestSchemaParity keeps them equal.
--
-- The providers a resource's tools use and the provider scopes each of its
-- own scopes reaches: a JSON array of {"provider": id, "scopes": {resource
-- scope: [provider scopes]}}. Existing resources use none.
ALTER TABLE resources ADD COLUMN providers TEXT NOT NULL DEFAULT '[]';

-- Downstream services (agentid providers). Scopes are a JSON array of
-- strings, auth_params a JSON object of strings, client_secret the
-- vault's sealed envelope (never plaintext), key_overlap_ns nanoseconds
-- (time.Duration; 0: the vault's default).
CREATE TABLE providers (
    tenant_id              TEXT    NOT NULL,
    id                     TEXT    NOT NULL,
    name                   TEXT    NOT NULL DEFAULT '',
    kind                   TEXT    NOT NULL,
    issuer                 TEXT    NOT NULL DEFAULT '',
    authorization_endpoint TEXT    NOT NULL DEFAULT '',
    token_endpoint         TEXT    NOT NULL DEFAULT '',
    revocation_endpoint    TEXT    NOT NULL DEFAULT '',
    client_id              TEXT    NOT NULL DEFAULT '',
    client_secret          BLOB,
    token_auth_method      TEXT    NOT NULL DEFAULT '',
    scopes                 TEXT    NOT NULL DEFAULT '[]',
    disable_pkce           INTEGER NOT NULL DEFAULT 0,
    auth_params            TEXT    NOT NULL DEFAULT '{}',
    key_header             TEXT    NOT NULL DEFAULT '',
    key_query              TEXT    NOT NULL DEFAULT '',
    key_format             TEXT    NOT NULL DEFAULT '',
    key_hint               TEXT    NOT NULL DEFAULT '',
    key_overlap_ns         INTEGER NOT NULL DEFAULT 0,
    disabled               INTEGER NOT NULL DEFAULT 0,
    created_at             INTEGER,
    updated_at             INTEGER,
    PRIMARY KEY (tenant_id, id)
);

-- Stored credentials. data_key is the per-connection data key wrapped by
-- the KEK named by kek_id; secret and previous_secret are sealed under the
-- data key. A provider's connections go with it.
CREATE TABLE connections (
    tenant_id           TEXT    NOT NULL,
    id                  TEXT    NOT NULL,
    provider_id         TEXT    NOT NULL,
    owner_kind          TEXT    NOT NULL,
    owner_id            TEXT    NOT NULL,
    label               TEXT    NOT NULL DEFAULT '',
    status              TEXT    NOT NULL,
    scopes              TEXT    NOT NULL DEFAULT '[]',
    data_key            BLOB,
    kek_id              TEXT    NOT NULL DEFAULT '',
    secret              BLOB,
    previous_secret     BLOB,
    previous_until      INTEGER,
    expires_at          INTEGER,
    last_refreshed_at   INTEGER,
    last_used_at        INTEGER,
    refresh_holder      TEXT    NOT NULL DEFAULT '',
    refresh_lease_until INTEGER,
    failures            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     INTEGER,
    created_at          INTEGER,
    updated_at          INTEGER,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, provider_id) REFERENCES providers (tenant_id, id) ON DELETE CASCADE
);
-- A person's connections to a provider (retrieval), and the cascade from
-- providers; a person's connections to any (/account).
CREATE INDEX connections_owner ON connections (tenant_id, provider_id, owner_kind, owner_id, id);
CREATE INDEX connections_person ON connections (tenant_id, owner_kind, owner_id, id);
-- KEK rotation: what is not yet wrapped by the new KEK.
CREATE INDEX connections_kek ON connections (tenant_id, kek_id);
-- DeleteExpired: rotated-out API keys whose overlap ended.
CREATE INDEX connections_previous ON connections (previous_until) WHERE previous_until IS NOT NULL;
-- Background refresh: expiring access tokens, and refresh tokens idle since
-- their last refresh (or, never refreshed, since the connection was made).
CREATE INDEX connections_expires ON connections (tenant_id, expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX connections_refreshed ON connections (tenant_id, coalesce(last_refreshed_at, created_at));
