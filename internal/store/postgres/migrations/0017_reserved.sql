-- 0017: reserved (session 6 contract: a branch not yet merged may take it); its
-- migration replaces this file when it merges. Migrations are numbered without
-- gaps, so 0018 needs a 0017 to follow. It changes nothing.
SELECT 1;
