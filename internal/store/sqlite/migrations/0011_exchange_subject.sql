-- 0010: nothing to do on SQLite. PostgreSQL gains agentid_check_subject,
-- the commit-time check of a token exchange; SQLite's single writer makes
-- the check part of the insert (qInsertAccessExchanged). Kept so both
-- backends count their schema versions alike.
SELECT 1;
