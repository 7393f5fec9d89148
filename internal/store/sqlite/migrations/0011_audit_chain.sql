-- 0011: the audit trail's hash chain (issue 13; docs/design.md, "Audit
-- trail integrity"). PostgreSQL's 0011 is its twin; TestSchemaParity keeps
-- them equal.
--
-- An event is written without a link; the sealer sets prev_hash and hash
-- (SHA-256, store.ChainHash) shortly after. NULL: not sealed yet.
ALTER TABLE audit_events ADD COLUMN prev_hash BLOB;
ALTER TABLE audit_events ADD COLUMN hash BLOB;

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
