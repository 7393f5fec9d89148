package audit

import (
	"maps"
	"slices"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// Record is the JSON form of a stored event, named as in
// docs/audit-events.md: what `agentid audit list --json`, `audit export
// --format ndjson` and GET /admin/api/audit write. Empty columns are left
// out; details are an object of strings.
type Record struct {
	ID        int64             `json:"id"`
	Time      time.Time         `json:"time"`
	TenantID  string            `json:"tenant_id"`
	Type      string            `json:"type"`
	Outcome   string            `json:"outcome"`
	ClientID  string            `json:"client_id,omitempty"`
	UserID    string            `json:"user_id,omitempty"`
	Resource  string            `json:"resource,omitempty"`
	Scopes    []string          `json:"scopes,omitempty"`
	IP        string            `json:"ip,omitempty"`
	RequestID string            `json:"request_id,omitempty"`
	Details   map[string]string `json:"details,omitempty"`
}

// RecordOf returns ev's JSON form.
func RecordOf(ev *store.AuditEvent) Record {
	return Record{
		ID: ev.ID, Time: ev.Time.UTC(), TenantID: ev.TenantID, Type: ev.Type, Outcome: ev.Outcome,
		ClientID: ev.ClientID, UserID: ev.UserID, Resource: ev.Resource, Scopes: slices.Clone(ev.Scopes),
		IP: ev.IP, RequestID: ev.RequestID, Details: maps.Clone(ev.StoredDetails()),
	}
}
