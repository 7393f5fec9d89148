-- 0006: agentid_check_live holds an issuance's client row (and its user's,
-- when the user is not '') FOR SHARE until the issuance commits, and raises
-- when either is gone or disabled: AG001 for the client, AG002 for the user.
-- An issuance runs it as the first statement of its pipelined batch, so the
-- check costs no round trip of its own.
CREATE FUNCTION agentid_check_live(p_tenant text, p_client text, p_user text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM clients WHERE tenant_id = p_tenant AND id = p_client AND NOT disabled FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'client deleted or disabled' USING ERRCODE = 'AG001';
    END IF;
    IF p_user <> '' THEN
        PERFORM 1 FROM users WHERE tenant_id = p_tenant AND id = p_user AND NOT disabled FOR SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'user deleted or disabled' USING ERRCODE = 'AG002';
        END IF;
    END IF;
END
$$;
