-- Placeholder for feed15's change-feed migration (0021 at merge): the
-- migrator refuses gaps, and the job leases' migration is 0022. Dropped
-- when the real 0021 lands.
SELECT 1;
