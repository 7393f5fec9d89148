-- 0007: nothing to do on SQLite. PostgreSQL's live check moves from row
-- locks to advisory locks; SQLite's single writer needs neither. Kept so
-- both backends count their schema versions alike.
SELECT 1;
