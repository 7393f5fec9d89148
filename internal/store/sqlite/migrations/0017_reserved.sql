-- Placeholder for oidc14's connectors migration (0017 at merge): the
-- migrator refuses gaps, and SCIM's migration is 0018. Dropped when the
-- real 0017 lands.
SELECT 1;
