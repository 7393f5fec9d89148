-- 0025: the audit chain's links stored per sealed run (issue 15;
-- docs/design.md, "Storage per grant"). SQLite's 0025 is its twin.
--
-- Until now each sealed event had a row of its own in audit_links (id,
-- tenant, prev_hash, hash): with its primary key about 150 bytes of every
-- client credentials grant, most of it the row's header and the prev_hash
-- that repeats the previous link's hash. From this version on the sealer
-- writes one row per tenant and sealing round instead: the run's events'
-- ids (store.AppendRunIDs: the first, then the gaps, as varints), the
-- prev_hash of its first event, and the events' hashes, 32 bytes each, in
-- id order. An event's prev_hash is the hash before it in its run. Links
-- already in audit_links stay there, are read as before and are never
-- rewritten; a trail holds both forms where the upgrade happened.
--
-- An older binary does not read runs: its sinks would stream the events
-- the new sealer linked without their hashes, its verify would report
-- them as unsealed. So, as 0023, the upgrade is not a rolling one: while
-- any replica holds a live background-job lease, the migration refuses,
-- and nothing of it is applied.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM job_leases WHERE lease_until > now()) THEN
        RAISE EXCEPTION 'agentid replicas are running on this database (a background-job lease is live): stop every replica before migrating to the audit runs (0025), then start the new ones (docs/operations.md, "Upgrades and migrations")';
    END IF;
END
$$;

CREATE TABLE audit_runs (
    tenant_id text   NOT NULL,
    last_id   bigint NOT NULL, -- the id of the run's last event
    first_id  bigint NOT NULL, -- and of its first
    prev_hash bytea  NOT NULL, -- the hash before the first event
    ids       bytea  NOT NULL, -- store.AppendRunIDs
    hashes    bytea  NOT NULL, -- 32 bytes per event, in id order
    PRIMARY KEY (tenant_id, last_id)
);
-- SHA-256 outputs do not compress: stored out of line without trying
-- (a run of more than about 60 events), where the ids, which do, are
-- compressed first.
ALTER TABLE audit_runs ALTER COLUMN hashes SET STORAGE EXTERNAL;

-- Scopes (store8's other finding): a text[] of one scope takes about 37
-- bytes, the same scope as text about 11. New access tokens and events
-- whose scopes are all non-empty and without a space store them in scope,
-- space-separated, with scopes NULL; any other list stays in scopes, as
-- every row written before does (the store reads whichever is set). Adding
-- a column without a default rewrites nothing.
ALTER TABLE access_tokens ADD COLUMN scope text;
ALTER TABLE audit_events ADD COLUMN scope text;
