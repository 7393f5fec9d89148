-- 0012: the audit trail's hash chain (issue 13; docs/design.md, "Audit
-- trail integrity"). SQLite's 0012 is its twin; TestSchemaParity keeps
-- them equal.
--
-- An event is written without a link; the sealer links it shortly after
-- (SHA-256, store.ChainHash). Its link is a row of its own, keyed by the
-- event's id: appending a small row costs a fraction of updating the
-- event (a new version of a wide row plus an entry in each of its four
-- indexes, and a dead row for vacuum). An event without a link is not
-- sealed yet.
CREATE TABLE audit_links (
    id        bigint NOT NULL PRIMARY KEY, -- audit_events.id
    tenant_id text   NOT NULL,
    prev_hash bytea  NOT NULL,
    hash      bytea  NOT NULL
);

-- Each tenant's newest sealed event.
CREATE TABLE audit_chain (
    tenant_id text   NOT NULL PRIMARY KEY,
    head_id   bigint NOT NULL,
    head_hash bytea  NOT NULL
);

-- The sealed-through mark, one row: every event id up to it has been
-- looked at by a sealer. Sealers lock this row first (SELECT … FOR
-- UPDATE), one at a time, so the chain cannot fork.
CREATE TABLE audit_seal (
    id      integer NOT NULL PRIMARY KEY CHECK (id = 1),
    through bigint  NOT NULL
);
INSERT INTO audit_seal (id, through) VALUES (1, 0);
