package server

import (
	"context"
	"net/http"
	"net/url"
	"slices"
)

// servedTenants are the tenants whose people this hub holds: its own
// first (Config.TenantID: its clients, resources, policy and grants), then
// every connector's, in order. A connector puts the people who sign in
// through it in its tenant (docs/design.md §10), so the console's people
// and audit pages and the admin API's must reach those tenants too, or an
// administrator could neither see their sign-ins nor disable them.
func (s *Server) servedTenants(ctx context.Context) ([]string, error) {
	cs, err := s.st.ListConnectors(ctx, "")
	if err != nil {
		return nil, err
	}
	var others []string
	for _, c := range cs {
		if c.TenantID != s.tenant && !slices.Contains(others, c.TenantID) {
			others = append(others, c.TenantID)
		}
	}
	slices.Sort(others)
	return append([]string{s.tenant}, others...), nil
}

// requestTenant is the tenant a console page or an admin API request
// names with its tenant parameter, the hub's own when there is none; ok is
// false when it names a tenant the hub does not serve.
func (s *Server) requestTenant(r *http.Request) (tenant string, ok bool, err error) {
	t := r.URL.Query().Get("tenant")
	if t == "" || t == s.tenant {
		return s.tenant, true, nil
	}
	served, err := s.servedTenants(r.Context())
	if err != nil {
		return "", false, err
	}
	return t, slices.Contains(served, t), nil
}

// tenantQuery is "?tenant=…" for a tenant other than the hub's own, to
// carry it on the console's links; "" for the hub's own.
func (s *Server) tenantQuery(tenant string) string {
	if tenant == s.tenant {
		return ""
	}
	return "?" + url.Values{"tenant": {tenant}}.Encode()
}
