-- 0015: one tool.invoked event per reported call (issue 13; docs/design.md
-- §6, "Tool calls"). SQLite's 0015 is its twin.
--
-- An MCP server names each tool call report with its own id, and sends a
-- batch again when it did not get the hub's answer. The report id and the
-- reporting client are details of the event; this index makes them unique
-- per tenant, so that AppendAuditOnce skips a report the trail already
-- holds. Only events naming a report id are in it.
CREATE UNIQUE INDEX audit_events_tool_report ON audit_events
    (tenant_id, (details->>'reporting_client'), (details->>'report_id'))
    WHERE (details->>'report_id') IS NOT NULL;
