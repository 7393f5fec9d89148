-- 0004: the shape both backends share from now on (PostgreSQL's 0004 is
-- its twin; TestSchemaParity keeps them equal).
--
-- Resources are keyed by their canonical URI (RFC 8707), the name every
-- store method, every token, code and consent uses for them; the id stays
-- unique per tenant. Their scopes refer to the URI and follow it. Duration
-- columns name their unit (nanoseconds, as time.Duration).
--
-- SQLite cannot change a primary key in place, so both tables are rebuilt
-- and the rows copied; the scopes are dropped before the resources they
-- refer to, and the renames rewrite the foreign key to the final name.

CREATE TABLE resources_v4 (
    tenant_id              TEXT    NOT NULL,
    uri                    TEXT    NOT NULL,
    id                     TEXT    NOT NULL,
    name                   TEXT    NOT NULL DEFAULT '',
    access_token_ttl_ns    INTEGER NOT NULL DEFAULT 0,
    consent_max_ttl_ns     INTEGER NOT NULL DEFAULT 0,
    consent_default_ttl_ns INTEGER NOT NULL DEFAULT 0,
    tags                   TEXT    NOT NULL DEFAULT '[]',
    created_at             INTEGER,
    PRIMARY KEY (tenant_id, uri),
    UNIQUE (tenant_id, id)
);
INSERT INTO resources_v4 (tenant_id, uri, id, name, access_token_ttl_ns, consent_max_ttl_ns,
    consent_default_ttl_ns, tags, created_at)
SELECT tenant_id, uri, id, name, access_token_ttl, consent_max_ttl, consent_default_ttl, tags, created_at
FROM resources;

CREATE TABLE resource_scopes_v4 (
    tenant_id    TEXT    NOT NULL,
    resource_uri TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    position     INTEGER NOT NULL,
    description  TEXT    NOT NULL DEFAULT '',
    sensitive    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, resource_uri, name),
    FOREIGN KEY (tenant_id, resource_uri) REFERENCES resources_v4 (tenant_id, uri)
        ON DELETE CASCADE ON UPDATE CASCADE
);
INSERT INTO resource_scopes_v4 (tenant_id, resource_uri, name, position, description, sensitive)
SELECT s.tenant_id, r.uri, s.name, s.position, s.description, s.sensitive
FROM resource_scopes s JOIN resources r ON r.tenant_id = s.tenant_id AND r.id = s.resource_id;

DROP TABLE resource_scopes;
DROP TABLE resources;
ALTER TABLE resources_v4 RENAME TO resources;
ALTER TABLE resource_scopes_v4 RENAME TO resource_scopes;
