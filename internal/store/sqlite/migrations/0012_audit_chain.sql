-- 0012: the audit trail's hash chain (issue 13; docs/design.md, "Audit
-- trail integrity"). PostgreSQL's 0012 is its twin; TestSchemaParity keeps
-- them equal.
--
-- An event is written without a link; the sealer links it shortly after
-- (SHA-256, store.ChainHash). Its link is a row of its own, keyed by the
-- event's id: appending a small row costs a fraction of rewriting the
-- event (on PostgreSQL a new version of a wide row and an entry in each of
-- its indexes). An event without a link is not sealed yet.
CREATE TABLE audit_links (
    id        INTEGER NOT NULL PRIMARY KEY, -- audit_events.id
    tenant_id TEXT    NOT NULL,
    prev_hash BLOB    NOT NULL,
    hash      BLOB    NOT NULL
);

-- Each tenant's newest sealed event.
CREATE TABLE audit_chain (
    tenant_id TEXT    NOT NULL PRIMARY KEY,
    head_id   INTEGER NOT NULL,
    head_hash BLOB    NOT NULL
);

-- The sealed-through mark, one row: every event id up to it has been
-- looked at by a sealer. Sealers take this row first, one at a time.
CREATE TABLE audit_seal (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    through INTEGER NOT NULL
);
INSERT INTO audit_seal (id, through) VALUES (1, 0);
