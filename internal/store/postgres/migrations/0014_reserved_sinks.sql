-- 0014: reserved for the audit sinks' cursors (branch sinks13), which
-- replaces this file at merge. Migrations are numbered without gaps, so
-- 0015 needs a 0014 to follow.
SELECT 1;
