-- 0023: storage per grant (issue 15; docs/design.md, "Storage per grant").
-- SQLite's 0023 is its twin.
--
-- The trail's user index holds only the events that name a person, as
-- SQLite's has since 0001: client credentials tokens, registrations and
-- the hub's own work name none, and their entries were about 80 bytes of
-- each client credentials grant. ListAudit adds user_id <> '' to a user
-- filter so that the planner can prove the index's predicate.
--
-- From this version on, new audit rows store frequent detail names in a
-- short form that older binaries do not read back (an older replica still
-- running would stream the short names, and, leading the sealer, hash new
-- rows in that form, which verify reports as breaks). So the upgrade is not
-- a rolling one: while any replica holds a live background-job lease, the
-- migration refuses, and nothing of it is applied.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM job_leases WHERE lease_until > now()) THEN
        RAISE EXCEPTION 'agentid replicas are running on this database (a background-job lease is live): stop every replica before migrating to version 23, then start the new ones (docs/operations.md, "Upgrades and migrations")';
    END IF;
END
$$;

-- On a populated trail the new index is built first, under a lock that
-- holds writers of audit_events back for the build (seconds per million
-- events) but lets readers (the audit API, the console, sinks, the sealer)
-- go on; only the drop of the old index and the rename at the end take the
-- lock that stops readers, for the moment before the commit.
CREATE INDEX audit_events_tenant_user_0023 ON audit_events (tenant_id, user_id, id) WHERE user_id <> '';
DROP INDEX audit_events_tenant_user;
ALTER INDEX audit_events_tenant_user_0023 RENAME TO audit_events_tenant_user;
