-- User attributes and per-resource user claims (issue 14; docs/design.md,
-- "User attributes"). The team contract numbers this migration 0017; it is
-- 0014 on its branch because migrations are numbered without gaps.
-- SQLite's twin has the same number.
--
-- A user's attributes (key → value) are what policy reads as the User
-- entity's tags; like roles and group_names they are read whole with the
-- user on every issuance and never queried, so they are a JSON object on
-- the user's row rather than a second read per token.
ALTER TABLE users ADD COLUMN attributes jsonb NOT NULL DEFAULT '{}';

-- The user claims a resource's access tokens carry: a JSON object of
-- claim name → source ("groups", "attr:department", …).
ALTER TABLE resources ADD COLUMN user_claims jsonb NOT NULL DEFAULT '{}';
