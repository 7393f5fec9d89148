-- 0021: the change feed (issue 15; docs/design.md §5, "Change feed").
-- PostgreSQL's 0021 is its twin; TestSchemaParity keeps them equal.
--
-- Every write to what a replica caches (clients, people, resources and
-- their scopes, the metadata-document domains, signing keys, policy sets,
-- trusted issuers)
-- records a change here, in the writing transaction: the triggers below do
-- it, so no write path can forget. seq is the rowid (AUTOINCREMENT: never
-- reused); SQLite has one writer at a time, so seq order is commit order
-- and a reader that has read up to seq N has seen every change up to N.
-- at is unix microseconds, for pruning.
CREATE TABLE changes (
    seq       INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    key       TEXT    NOT NULL,
    at        INTEGER NOT NULL
);
CREATE INDEX changes_at ON changes (at);

-- The highest seq pruned: a reader behind it may have missed changes.
CREATE TABLE changes_pruned (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    through INTEGER NOT NULL
);
INSERT INTO changes_pruned (id, through) VALUES (1, 0);

-- Clients: every update but a token issuance noting the client's last use
-- (Issuance.Touch sets last_used_at alone), and deletes. A new client
-- invalidates nothing: a missing client is never cached. A column added
-- to clients must be added to the UPDATE OF list (storetest checks that
-- UpdateClient records a change).
CREATE TRIGGER changes_clients_update AFTER UPDATE OF tenant_id, id, name, secret_hash, secret_expires_at,
    redirect_uris, grant_types, response_types, token_endpoint_auth_method, application_type, scopes,
    default_resource, jwks, jwks_uri, client_uri, logo_uri, tos_uri, policy_uri, contacts, software_id,
    software_version, registration_method, registration_token_hash, created_ip, tags, owner_user_id,
    disabled, created_at, updated_at, requested_scopes, status, software_statement_issuer, federated_issuer
ON clients BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (NEW.tenant_id, 'client', NEW.id, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;
CREATE TRIGGER changes_clients_delete AFTER DELETE ON clients BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (OLD.tenant_id, 'client', OLD.id, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER changes_users_update AFTER UPDATE ON users BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (NEW.tenant_id, 'user', NEW.id, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;
CREATE TRIGGER changes_users_delete AFTER DELETE ON users BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (OLD.tenant_id, 'user', OLD.id, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER changes_resources_insert AFTER INSERT ON resources BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (NEW.tenant_id, 'resource', NEW.uri, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;
CREATE TRIGGER changes_resources_update AFTER UPDATE ON resources BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (OLD.tenant_id, 'resource', OLD.uri, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
    INSERT INTO changes (tenant_id, kind, key, at) SELECT NEW.tenant_id, 'resource', NEW.uri, CAST(unixepoch('subsec') * 1000000 AS INTEGER)
        WHERE NEW.uri IS NOT OLD.uri OR NEW.tenant_id IS NOT OLD.tenant_id;
END;
CREATE TRIGGER changes_resources_delete AFTER DELETE ON resources BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (OLD.tenant_id, 'resource', OLD.uri, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;
CREATE TRIGGER changes_resource_scopes_insert AFTER INSERT ON resource_scopes BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (NEW.tenant_id, 'resource', NEW.resource_uri, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;
CREATE TRIGGER changes_resource_scopes_update AFTER UPDATE ON resource_scopes BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (NEW.tenant_id, 'resource', NEW.resource_uri, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;
CREATE TRIGGER changes_resource_scopes_delete AFTER DELETE ON resource_scopes BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (OLD.tenant_id, 'resource', OLD.resource_uri, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER changes_domains_insert AFTER INSERT ON domains BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (NEW.tenant_id, 'domain', NEW.pattern, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;
CREATE TRIGGER changes_domains_update AFTER UPDATE ON domains BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (NEW.tenant_id, 'domain', NEW.pattern, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;
CREATE TRIGGER changes_domains_delete AFTER DELETE ON domains BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (OLD.tenant_id, 'domain', OLD.pattern, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER changes_signing_keys_insert AFTER INSERT ON signing_keys BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (NEW.tenant_id, 'signing_key', NEW.kid, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;
CREATE TRIGGER changes_signing_keys_update AFTER UPDATE ON signing_keys BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (NEW.tenant_id, 'signing_key', NEW.kid, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;
CREATE TRIGGER changes_signing_keys_delete AFTER DELETE ON signing_keys BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (OLD.tenant_id, 'signing_key', OLD.kid, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

-- Policy sets: a new version, an activation (active flips on two rows) and
-- a deletion; key is the version.
CREATE TRIGGER changes_policy_sets_insert AFTER INSERT ON policy_sets BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (NEW.tenant_id, 'policy', CAST(NEW.version AS TEXT), CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;
CREATE TRIGGER changes_policy_sets_update AFTER UPDATE ON policy_sets BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (NEW.tenant_id, 'policy', CAST(NEW.version AS TEXT), CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;
CREATE TRIGGER changes_policy_sets_delete AFTER DELETE ON policy_sets BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (OLD.tenant_id, 'policy', CAST(OLD.version AS TEXT), CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER changes_issuers_insert AFTER INSERT ON issuers BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (NEW.tenant_id, 'issuer', NEW.id, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;
CREATE TRIGGER changes_issuers_update AFTER UPDATE ON issuers BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (NEW.tenant_id, 'issuer', NEW.id, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;
CREATE TRIGGER changes_issuers_delete AFTER DELETE ON issuers BEGIN
    INSERT INTO changes (tenant_id, kind, key, at) VALUES (OLD.tenant_id, 'issuer', OLD.id, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;
