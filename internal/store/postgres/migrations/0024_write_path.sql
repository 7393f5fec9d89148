-- 0024: the write path of an issued token (issue 15; docs/design.md,
-- "Storage per grant", and docs/benchmarks.md, "The write path of an
-- issued token"). SQLite's 0024 is its twin.
--
-- The grant index of access_tokens holds only tokens of a grant family
-- (WHERE grant_id <> ''), as SQLite's has since 0001: a client
-- credentials token has none, and each one put an entry under the empty
-- grant id, a B-tree insert on every issuance that no query reads. Every
-- query by grant says grant_id <> '' so that the planner can use it, also
-- with a generic plan.
--
-- As in 0023, the new index is built before the old one is dropped: the
-- build holds writers of access_tokens back (the table holds the tokens
-- of the last access-token lifetime only, an hour at most), readers go on.
-- The change is compatible with binaries of version 23: they read and
-- write the same rows; their grant revocation runs without grant_id <> ''
-- and is planned for its parameter's value, which PostgreSQL proves
-- non-empty when it plans it (a custom plan).
CREATE INDEX access_tokens_grant_0024 ON access_tokens (tenant_id, grant_id) WHERE grant_id <> '';
DROP INDEX access_tokens_grant;
ALTER INDEX access_tokens_grant_0024 RENAME TO access_tokens_grant;
