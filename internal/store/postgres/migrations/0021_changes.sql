-- 0021: the change feed (issue 15; docs/design.md §5, "Change feed").
-- SQLite's 0021 is its twin; TestSchemaParity keeps them equal.
--
-- Every write to what a replica caches (clients, people, resources and
-- their scopes, the metadata-document domains, signing keys, policy sets,
-- trusted issuers)
-- records a change here, in the writing transaction: the triggers below do
-- it, so no write path can forget, and wake the replicas listening on
-- channel agentid_changes (NOTIFY is delivered at commit, and not at all
-- on rollback).
--
-- seq comes from a sequence, so transactions commit their changes out of
-- seq order; readers use the audit chain's fence (postgres/changes.go): a
-- writer has a transaction id before it takes a seq (record_change asks
-- for one first; the row it records the change of gave it one already).
CREATE TABLE changes (
    seq       bigserial   PRIMARY KEY,
    tenant_id text        NOT NULL,
    kind      text        NOT NULL,
    key       text        NOT NULL,
    at        timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX changes_at ON changes (at);

-- The highest seq pruned: a reader behind it may have missed changes.
CREATE TABLE changes_pruned (
    id      integer NOT NULL PRIMARY KEY CHECK (id = 1),
    through bigint  NOT NULL
);
INSERT INTO changes_pruned (id, through) VALUES (1, 0);

CREATE FUNCTION record_change(p_tenant text, p_kind text, p_key text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_current_xact_id();
    INSERT INTO changes (tenant_id, kind, key) VALUES (p_tenant, p_kind, p_key);
    PERFORM pg_notify('agentid_changes', '');
END
$$;

-- record_row_change is the row trigger: TG_ARGV[0] is the kind,
-- TG_ARGV[1] the column that is the key. An update that moves the key
-- records the old key and the new one.
CREATE FUNCTION record_row_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    o jsonb;
    n jsonb;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        o := to_jsonb(OLD);
        PERFORM record_change(o->>'tenant_id', TG_ARGV[0], o->>TG_ARGV[1]);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        n := to_jsonb(NEW);
        IF o IS NULL OR o->>'tenant_id' IS DISTINCT FROM n->>'tenant_id' OR o->>TG_ARGV[1] IS DISTINCT FROM n->>TG_ARGV[1] THEN
            PERFORM record_change(n->>'tenant_id', TG_ARGV[0], n->>TG_ARGV[1]);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

-- Clients: every update but a token issuance noting the client's last use
-- (Issuance.Touch sets last_used_at alone), and deletes. A new client
-- invalidates nothing: a missing client is never cached. A column added
-- to clients must be added to the UPDATE OF list (storetest checks that
-- UpdateClient records a change).
CREATE TRIGGER changes_clients AFTER UPDATE OF tenant_id, id, name, secret_hash, secret_expires_at,
    redirect_uris, grant_types, response_types, token_endpoint_auth_method, application_type, scopes,
    default_resource, jwks, jwks_uri, client_uri, logo_uri, tos_uri, policy_uri, contacts, software_id,
    software_version, registration_method, registration_token_hash, created_ip, tags, owner_user_id,
    disabled, created_at, updated_at, requested_scopes, status, software_statement_issuer, federated_issuer
    OR DELETE ON clients FOR EACH ROW EXECUTE FUNCTION record_row_change('client', 'id');
CREATE TRIGGER changes_users AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION record_row_change('user', 'id');
CREATE TRIGGER changes_resources AFTER INSERT OR UPDATE OR DELETE ON resources
    FOR EACH ROW EXECUTE FUNCTION record_row_change('resource', 'uri');
CREATE TRIGGER changes_resource_scopes AFTER INSERT OR UPDATE OR DELETE ON resource_scopes
    FOR EACH ROW EXECUTE FUNCTION record_row_change('resource', 'resource_uri');
CREATE TRIGGER changes_domains AFTER INSERT OR UPDATE OR DELETE ON domains
    FOR EACH ROW EXECUTE FUNCTION record_row_change('domain', 'pattern');
CREATE TRIGGER changes_signing_keys AFTER INSERT OR UPDATE OR DELETE ON signing_keys
    FOR EACH ROW EXECUTE FUNCTION record_row_change('signing_key', 'kid');
-- Policy sets: a new version, an activation (active flips on two rows) and
-- a deletion; key is the version.
CREATE TRIGGER changes_policy_sets AFTER INSERT OR UPDATE OR DELETE ON policy_sets
    FOR EACH ROW EXECUTE FUNCTION record_row_change('policy', 'version');
CREATE TRIGGER changes_issuers AFTER INSERT OR UPDATE OR DELETE ON issuers
    FOR EACH ROW EXECUTE FUNCTION record_row_change('issuer', 'id');
