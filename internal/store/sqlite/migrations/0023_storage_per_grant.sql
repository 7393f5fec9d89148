-- 0023: storage per grant (issue 15; docs/design.md, "Storage per grant").
-- PostgreSQL's 0023 is its twin: it makes the trail's user index partial
-- (WHERE user_id <> ''), which SQLite's has been since 0001. The other
-- half of the change, the short names of frequent details keys in new
-- events (store.CompactDetails), needs no schema change on either backend.
SELECT 1;
