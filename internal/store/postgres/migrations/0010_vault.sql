-- 0010: the credential vault (issue 12). SQLite's 0010 is its twin;
-- TestSchemaParity keeps them equal.
--
-- The providers a resource's tools use and the provider scopes each of its
-- own scopes reaches: a JSON array of {"provider": id, "scopes": {resource
-- scope: [provider scopes]}}. Existing resources use none. A constant
-- default: no table rewrite.
ALTER TABLE resources ADD COLUMN providers jsonb NOT NULL DEFAULT '[]';

-- Downstream services (agentid providers). auth_params is a JSON object of
-- strings, client_secret the vault's sealed envelope (never plaintext),
-- key_overlap_ns nanoseconds (time.Duration; 0: the vault's default).
CREATE TABLE providers (
    tenant_id              text        NOT NULL,
    id                     text        NOT NULL,
    name                   text        NOT NULL DEFAULT '',
    kind                   text        NOT NULL,
    issuer                 text        NOT NULL DEFAULT '',
    authorization_endpoint text        NOT NULL DEFAULT '',
    token_endpoint         text        NOT NULL DEFAULT '',
    revocation_endpoint    text        NOT NULL DEFAULT '',
    client_id              text        NOT NULL DEFAULT '',
    client_secret          bytea,
    token_auth_method      text        NOT NULL DEFAULT '',
    scopes                 text[],
    disable_pkce           boolean     NOT NULL DEFAULT false,
    auth_params            jsonb,
    key_header             text        NOT NULL DEFAULT '',
    key_query              text        NOT NULL DEFAULT '',
    key_format             text        NOT NULL DEFAULT '',
    key_hint               text        NOT NULL DEFAULT '',
    key_overlap_ns         bigint      NOT NULL DEFAULT 0,
    disabled               boolean     NOT NULL DEFAULT false,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Stored credentials. data_key is the per-connection data key wrapped by
-- the KEK named by kek_id; secret and previous_secret are sealed under the
-- data key. A provider's connections go with it; the foreign key also
-- makes a connection created while its provider is deleted go with it.
CREATE TABLE connections (
    tenant_id           text        NOT NULL,
    id                  text        NOT NULL,
    provider_id         text        NOT NULL,
    owner_kind          text        NOT NULL,
    owner_id            text        NOT NULL,
    label               text        NOT NULL DEFAULT '',
    status              text        NOT NULL,
    scopes              text[],
    data_key            bytea,
    kek_id              text        NOT NULL DEFAULT '',
    secret              bytea,
    previous_secret     bytea,
    previous_until      timestamptz,
    expires_at          timestamptz,
    last_refreshed_at   timestamptz,
    last_used_at        timestamptz,
    refresh_holder      text        NOT NULL DEFAULT '',
    refresh_lease_until timestamptz,
    failures            integer     NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
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
CREATE INDEX connections_refreshed ON connections (tenant_id, (coalesce(last_refreshed_at, created_at)));
