-- 0005: a resource names the confidential client that is its resource
-- server (DESIGN §4a): only that client may introspect tokens whose aud is
-- the resource (RFC 7662 §4). '' means no client is linked.
ALTER TABLE resources ADD COLUMN client_id TEXT NOT NULL DEFAULT '';
