-- Placeholder for wr9's 0024 (the issued token's write path) on the pg9
-- branch: the migrator refuses gaps, and the audit runs are 0025. Dropped
-- when the real 0024 lands.
SELECT 1;
