package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// readyTimeout bounds the store round trips of one readiness probe.
const readyTimeout = 2 * time.Second

// readiness is the /readyz answer: "ready", or "not_ready" with the failed
// checks' reasons. The reasons are fixed phrases and schema versions, never
// an error text, which could name the database's host or user.
type readiness struct {
	Status string `json:"status"`
	// Checks maps each check (store, keys, migrations) to "ok" or the
	// reason it failed.
	Checks map[string]string `json:"checks"`
}

// handleReady answers whether this replica should receive traffic: the
// store answers, a loaded signing key may sign now, and the database
// schema is the one this binary was built for (a replica of an older
// release next to a migrated database, or one whose database lost a
// migration, must not serve). 200 when all hold, else 503; either way the
// body says which check failed. /healthz stays a bare liveness answer.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	out := readiness{Status: "ready", Checks: map[string]string{"store": "ok", "keys": "ok", "migrations": "ok"}}
	fail := func(check, reason string) {
		out.Status = "not_ready"
		out.Checks[check] = reason
	}
	if err := s.st.Ping(ctx); err != nil {
		s.log.ErrorContext(ctx, "readiness: store unreachable", "request_id", requestID(ctx), "err", err)
		fail("store", "the database does not answer")
	}
	if !s.keys.CanSign() {
		fail("keys", "no loaded signing key may sign now")
	}
	switch current, known, err := s.st.SchemaVersion(ctx); {
	case err != nil:
		s.log.ErrorContext(ctx, "readiness: reading the schema version", "request_id", requestID(ctx), "err", err)
		fail("migrations", "the schema version cannot be read")
	case current != known:
		fail("migrations", fmt.Sprintf("the database schema is at version %d, this binary needs %d", current, known))
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if out.Status != "ready" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(out)
}
