-- 0024: the write path of an issued token (issue 15; docs/design.md,
-- "Storage per grant"). PostgreSQL's 0024 is its twin: it makes the grant
-- index of access_tokens partial (WHERE grant_id <> ''), which SQLite's
-- has been since 0001. Nothing to change here.
SELECT 1;
