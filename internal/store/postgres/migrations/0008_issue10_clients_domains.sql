-- 0008: registration governance and Client ID Metadata Documents (issue 10).
-- SQLite's 0008 is its twin; TestSchemaParity keeps them equal.
--
-- A client's status (active, or pending an administrator's approval), when
-- a token was last issued to it (coarse: Issuance.Touch) and the issuer of
-- the software statement its registration carried. Existing clients are
-- active. Constant defaults: no table rewrite.
ALTER TABLE clients ADD COLUMN status text NOT NULL DEFAULT 'active';
ALTER TABLE clients ADD COLUMN last_used_at timestamptz;
ALTER TABLE clients ADD COLUMN software_statement_issuer text NOT NULL DEFAULT '';

-- The installation (oauth.InstallationURI of the authorization's redirect
-- URI) a token family came from; '' for grants without one.
ALTER TABLE refresh_tokens ADD COLUMN redirect_uri text NOT NULL DEFAULT '';
ALTER TABLE access_tokens ADD COLUMN redirect_uri text NOT NULL DEFAULT '';

-- The administrator's trust decisions on metadata-document hosts.
CREATE TABLE domains (
    tenant_id        text        NOT NULL,
    pattern          text        NOT NULL,
    trust            text        NOT NULL,
    allow_text_plain boolean     NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, pattern)
);

-- The duplicate candidates of a dynamic registration (ClientsBySoftware).
CREATE INDEX clients_software ON clients (tenant_id, software_id, name) WHERE registration_method = 'dcr';
-- The prune sweep: self-registered clients by last use (or creation).
CREATE INDEX clients_unused ON clients (tenant_id, registration_method, (coalesce(last_used_at, created_at)));
