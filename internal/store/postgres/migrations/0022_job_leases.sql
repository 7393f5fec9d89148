-- 0022: leases of the hub's background jobs (issue 15; docs/design.md,
-- "Background jobs across replicas"). SQLite's 0022 is its twin;
-- TestSchemaParity keeps them equal.
--
-- One row per job a replica leads: who holds it, until when, and since
-- when. A released lease has no row.
CREATE TABLE job_leases (
    name        text        NOT NULL PRIMARY KEY,
    holder      text        NOT NULL,
    lease_until timestamptz NOT NULL,
    since       timestamptz NOT NULL
);
