-- 0006: nothing to do on SQLite. PostgreSQL gains a function that checks an
-- issuance's client and user inside its batch; SQLite's single writer runs
-- the same check as plain queries (tx.live). Kept so both backends count
-- their schema versions alike.
SELECT 1;
