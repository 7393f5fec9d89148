-- 0012: indexes for audit queries (issue 13; docs/design.md, "Audit
-- queries"). PostgreSQL's 0012 is its twin.
--
-- agentid audit list and GET /admin/api/audit filter within a tenant,
-- newest first (by id). Client and user have indexes since 0001; these
-- add the event type (exact and prefix: a range on the BINARY column),
-- the resource, and the provider and agent, which are details: each
-- index is on the very expression the query compares, and only events
-- naming one are in it.
CREATE INDEX audit_events_type     ON audit_events (tenant_id, type, id);
CREATE INDEX audit_events_resource ON audit_events (tenant_id, resource, id) WHERE resource <> '';
CREATE INDEX audit_events_provider ON audit_events (tenant_id, json_extract(details, '$.provider'), id)
    WHERE json_extract(details, '$.provider') IS NOT NULL;
CREATE INDEX audit_events_agent    ON audit_events (tenant_id, json_extract(details, '$.agent'), id)
    WHERE json_extract(details, '$.agent') IS NOT NULL;
