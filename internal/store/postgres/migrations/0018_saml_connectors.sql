-- 0019: SAML 2.0 connectors (issue 14). SQLite's 0019 is its twin;
-- TestSchemaParity keeps them equal.
--
-- A SAML connector keeps its identity provider's metadata (entity id,
-- single sign-on URL, signing certificate) as given by the administrator;
-- its claim columns name SAML attributes. Used assertion ids go to
-- used_jtis like every other single-use id.
ALTER TABLE connectors ADD COLUMN saml_metadata text NOT NULL DEFAULT '';
