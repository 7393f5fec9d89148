-- 0004: the shape both backends share from now on (SQLite's 0004 is its
-- twin; TestSchemaParity keeps them equal).
--
-- Users' groups are group_names: GROUPS is a keyword of both dialects'
-- window syntax, and a plain identifier needs no quoting anywhere.
ALTER TABLE users RENAME COLUMN groups TO group_names;

-- A signing key is named by its kid (RFC 7517 §4.5), as in JWKS and in
-- every token header it signs.
ALTER TABLE signing_keys RENAME COLUMN id TO kid;

-- Policy files are rows, one per file of a version, instead of a jsonb
-- document: relational like the rest of the schema, readable and
-- constrained by SQL (one name per version), and deleted with their set.
CREATE TABLE policy_files (
    tenant_id text   NOT NULL,
    version   bigint NOT NULL,
    name      text   NOT NULL,
    content   text   NOT NULL,
    PRIMARY KEY (tenant_id, version, name),
    FOREIGN KEY (tenant_id, version) REFERENCES policy_sets (tenant_id, version) ON DELETE CASCADE
);
INSERT INTO policy_files (tenant_id, version, name, content)
SELECT p.tenant_id, p.version, f.key, f.value
FROM policy_sets p, jsonb_each_text(p.files) f
WHERE jsonb_typeof(p.files) = 'object';
ALTER TABLE policy_sets DROP COLUMN files;
