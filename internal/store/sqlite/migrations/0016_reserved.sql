-- 0016: reserved for branch perf11 (session 6 contract); its own migration
-- replaces this file when it merges. It changes nothing.
SELECT 1;
