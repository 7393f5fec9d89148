-- 0007: agentid_check_live takes transaction-scoped advisory locks instead
-- of holding the client and user rows FOR SHARE. Many issuances for one
-- client sharing its row made PostgreSQL record them in a multixact (a
-- write per share); an advisory lock lives in the lock manager only.
--
-- agentid_live_lock is the one definition of the keys: a client and a user
-- of a tenant each have one, taken shared by an issuance (the check below)
-- and exclusively by everything that disables, deletes or revokes the
-- tokens of that client or user, before its first write. So a concurrent
-- disable either commits first, and the check's read (which starts after
-- the lock is granted, with a fresh snapshot) sees it, or waits for the
-- issuance to commit and then finds its tokens to revoke.
--
-- The keys use the two-int4 form of the advisory lock functions, a key space
-- of its own: the bigint keys of the migration, policy and refresh-family
-- locks cannot collide with them. key1 hashes the kind and the tenant, key2
-- the id; a collision only makes two unrelated writers or an issuance and a
-- writer wait for each other.
CREATE FUNCTION agentid_live_lock(p_kind text, p_tenant text, p_id text, p_shared boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    k1 integer := hashtext('agentid.live.' || p_kind || '/' || p_tenant);
    k2 integer := hashtext(p_id);
BEGIN
    IF p_shared THEN
        PERFORM pg_advisory_xact_lock_shared(k1, k2);
    ELSE
        PERFORM pg_advisory_xact_lock(k1, k2);
    END IF;
END
$$;

-- The rows are read after the locks are granted; plain reads, no row locks.
-- A function's statements each take a new snapshot (it is VOLATILE), so the
-- reads see every disable that committed before the lock was granted.
-- Errors are those of 0006: AG001 for the client, AG002 for the user.
CREATE OR REPLACE FUNCTION agentid_check_live(p_tenant text, p_client text, p_user text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- The keys of agentid_live_lock (keep the two alike), written out
    -- rather than called: this runs on every issuance.
    PERFORM pg_advisory_xact_lock_shared(hashtext('agentid.live.client/' || p_tenant), hashtext(p_client));
    IF p_user <> '' THEN
        PERFORM pg_advisory_xact_lock_shared(hashtext('agentid.live.user/' || p_tenant), hashtext(p_user));
    END IF;
    PERFORM 1 FROM clients WHERE tenant_id = p_tenant AND id = p_client AND NOT disabled;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'client deleted or disabled' USING ERRCODE = 'AG001';
    END IF;
    IF p_user <> '' THEN
        PERFORM 1 FROM users WHERE tenant_id = p_tenant AND id = p_user AND NOT disabled;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'user deleted or disabled' USING ERRCODE = 'AG002';
        END IF;
    END IF;
END
$$;
