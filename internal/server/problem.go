package server

import (
	"encoding/json"
	"net/http"

	"github.com/agentid/agentid/internal/audit"
)

// problem is an RFC 9457 (formerly RFC 7807) problem detail, the error
// body of the admin API. Type is "about:blank" unless set, and Title then
// the status's reason phrase (RFC 9457 §4.2.1).
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// RequestID is the hub's id of the request (extension member), the
	// key of its log lines.
	RequestID string `json:"request_id,omitempty"`
	// InvalidParams names each bad query parameter and why (extension
	// member, as in RFC 9457 §3's example).
	InvalidParams []audit.QueryProblem `json:"invalid-params,omitempty"`
}

// writeProblem writes p as application/problem+json with its status.
func writeProblem(w http.ResponseWriter, p problem) {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
