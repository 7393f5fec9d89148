-- 0010: agentid_check_subject, the commit-time check of a token exchange
-- (store.Issuance.SubjectJTI). It runs in the issuance's pipelined batch,
-- after agentid_check_live and before the access-token insert, and raises
-- AG003 when the subject token's record is missing or of another tenant,
-- AG004 when it is revoked or its family was revoked by a code replay.
--
-- A revocation of the family must reach the exchanged token whichever
-- commits first. Every writer that revokes a family takes the family's
-- advisory lock exclusively before its first write (revokeGrant, and
-- RotateRefresh already did); the check takes it shared, then reads with a
-- new snapshot (a VOLATILE function's statements each take one). So a
-- revocation either committed before the read, and is seen, or waits for
-- the exchange to commit and then finds its token to revoke. The key is the
-- one RotateRefresh uses: hashtextextended(tenant || '/' || grant, 0).
CREATE FUNCTION agentid_check_subject(p_tenant text, p_jti text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    g text;
BEGIN
    SELECT grant_id INTO g FROM access_tokens WHERE jti = p_jti AND tenant_id = p_tenant;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subject token unknown' USING ERRCODE = 'AG003';
    END IF;
    IF g <> '' THEN
        PERFORM pg_advisory_xact_lock_shared(hashtextextended(p_tenant || '/' || g, 0));
    END IF;
    PERFORM 1 FROM access_tokens WHERE jti = p_jti AND revoked_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subject token revoked' USING ERRCODE = 'AG004';
    END IF;
    IF g <> '' THEN
        PERFORM 1 FROM auth_codes WHERE tenant_id = p_tenant AND grant_id = g AND grant_revoked_at IS NOT NULL;
        IF FOUND THEN
            RAISE EXCEPTION 'subject token revoked' USING ERRCODE = 'AG004';
        END IF;
    END IF;
END
$$;
