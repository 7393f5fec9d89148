-- 0018: reserved for another branch of session 6 (scim14 takes 0018, saml14
-- 0019); the migrator refuses gaps, so 0020 needs these. Delete each when
-- the real migration of that number merges.
SELECT 1;
