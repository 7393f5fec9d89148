package server

import (
	"net/http"

	"github.com/agentid/agentid/internal/audit"
)

// meta is what every audit event of this request records about it.
func (s *Server) meta(r *http.Request) audit.Meta {
	return audit.Meta{TenantID: s.tenant, RequestID: requestID(r.Context()), ClientRequestID: clientRequestID(r.Context()), IP: clientIP(r), UserAgent: r.UserAgent(), Time: s.now()}
}
