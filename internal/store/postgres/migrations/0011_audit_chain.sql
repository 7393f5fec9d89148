-- 0011: the audit trail's hash chain (issue 13; docs/design.md, "Audit
-- trail integrity"). SQLite's 0011 is its twin; TestSchemaParity keeps
-- them equal.
--
-- An event is written without a link; the sealer sets prev_hash and hash
-- (SHA-256, store.ChainHash) shortly after. NULL: not sealed yet. Nullable
-- columns without a default: no table rewrite.
ALTER TABLE audit_events ADD COLUMN prev_hash bytea;
ALTER TABLE audit_events ADD COLUMN hash bytea;

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
