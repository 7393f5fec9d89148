package server_test

import (
	"net/http"
	"net/url"
	"sync"
	"testing"
)

// BenchmarkRetrieval measures credential retrieval without a cache in the
// MCP server: every call is a hub round trip through the whole HTTP
// handler on SQLite — client authentication of the MCP server, the subject
// token (signature, record, chain), person and agent read from the store,
// the consent ledger, the provider and its link, the connect policy
// decision, the vault's Find and Credential (the provider's access token
// is warm: no refresh) and the durable TouchConnection with its
// connection.retrieved event. It reports retrievals/s, the CPU time per
// retrieval, the rate that implies on two idle cores, and the 99th
// percentile latency of one retrieval.
//
// distinct-subjects presents a different subject token every time (a
// signature check each); same-subject one token over and over, as an MCP
// server serving one tool call that reads the provider several times.
func BenchmarkRetrieval(b *testing.B) {
	b.Run("distinct-subjects", func(b *testing.B) { benchRetrieval(b, 20000) })
	b.Run("same-subject", func(b *testing.B) { benchRetrieval(b, 1) })
}

func benchRetrieval(b *testing.B, subjects int) {
	h := newRetrievalHub(b, "")
	h.connect("calendar.read", "calendar.write")
	bodies := make([]string, subjects)
	// The first subject token comes from a real code flow (which records
	// the person's consent); the others are minted and recorded the same
	// way, for the same person and agent.
	bodies[0] = retrievalBody(h, h.userToken("notes.read", "notes.write"))
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 1 + w; i < subjects; i += 8 {
				bodies[i] = retrievalBody(h, mintSubject(b, h.hub))
			}
		})
	}
	wg.Wait()
	// The credential is warm: one retrieval first, so every timed one
	// finds the provider's token fresh.
	if r := h.retrieve("mcp-a", h.userToken("notes.read"), "calendar"); r.status != http.StatusOK {
		b.Fatalf("warm-up: %d %v", r.status, r.body)
	}
	handler := h.Server.Handler()
	secret := h.secrets["mcp-a"]

	benchTokenPosts(b, handler, h.URL, "mcp-a", secret, bodies, "retrievals")
}

func retrievalBody(h *retrievalHub, subject string) string {
	return url.Values{
		"grant_type": {grantExchange}, "subject_token": {subject}, "subject_token_type": {typeAccess},
		"resource": {h.providerURI("calendar")}, "scope": {"calendar.read"},
	}.Encode()
}
