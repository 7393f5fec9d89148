-- 0014: reserved for branch sinks13 (session 6 contract); its own migration
-- replaces this file when it merges. It changes nothing.
SELECT 1;
