-- 0012: indexes for audit queries (issue 13; docs/design.md, "Audit
-- queries"). SQLite's 0012 is its twin (SQLite also gains the type index
-- PostgreSQL has had since 0001).
--
-- agentid audit list and GET /admin/api/audit filter within a tenant,
-- newest first (by id): by resource, and by provider and agent, which
-- are details: each index is on the expression the query compares, and
-- only events naming one are in it.
CREATE INDEX audit_events_tenant_resource ON audit_events (tenant_id, resource, id) WHERE resource <> '';
CREATE INDEX audit_events_tenant_provider ON audit_events (tenant_id, (details->>'provider'), id)
    WHERE (details->>'provider') IS NOT NULL;
CREATE INDEX audit_events_tenant_agent ON audit_events (tenant_id, (details->>'agent'), id)
    WHERE (details->>'agent') IS NOT NULL;
