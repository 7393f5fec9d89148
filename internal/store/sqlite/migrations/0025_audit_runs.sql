-- 0025: the audit chain's links stored per sealed run (issue 15;
-- docs/design.md, "Storage per grant"). PostgreSQL's 0025 is its twin,
-- and PostgreSQL's sealer writes this table instead of audit_links. On
-- SQLite a link row costs about 83 bytes (no per-row header of 24 bytes,
-- an integer primary key that is the row id), the sealer links from the
-- writer's memory, and its links stay a row per event: the table is here
-- so that the backends keep one schema (TestSchemaParity), and stays empty.
CREATE TABLE audit_runs (
    tenant_id TEXT    NOT NULL,
    last_id   INTEGER NOT NULL,
    first_id  INTEGER NOT NULL,
    prev_hash BLOB    NOT NULL,
    ids       BLOB    NOT NULL,
    hashes    BLOB    NOT NULL,
    PRIMARY KEY (tenant_id, last_id)
);

-- PostgreSQL's access tokens and events keep a list of well-formed scopes
-- as text in scope rather than in its text[] scopes. SQLite's scopes are
-- JSON text already (15 bytes for one scope); the columns are here for
-- parity and stay empty.
ALTER TABLE access_tokens ADD COLUMN scope TEXT;
ALTER TABLE audit_events ADD COLUMN scope TEXT;
