package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

// revokeBeforeWrite runs revoke once, just before the first issuance to
// client is written: a revocation landing between the exchange's checks
// of its subject token and the write of the token it issues.
type revokeBeforeWrite struct {
	store.Store
	client string
	once   sync.Once
	revoke func() // set once the subject token exists
}

func (r *revokeBeforeWrite) IssueTokens(ctx context.Context, iss *store.Issuance) error {
	if iss.AccessToken != nil && iss.AccessToken.ClientID == r.client && r.revoke != nil {
		r.once.Do(r.revoke)
	}
	return r.Store.IssueTokens(ctx, iss)
}

// TestTokenExchangeRevokedMidway: a revocation of the subject token, or of
// its family, that lands after the exchange checked the subject token and
// before it writes the new token is caught by that write: the exchange is
// invalid_grant, and no token of it outlives the revocation.
func TestTokenExchangeRevokedMidway(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, what := range []string{"family", "subject token"} {
			t.Run(backend+"/"+what, func(t *testing.T) {
				mid := &revokeBeforeWrite{client: "mcp-a"}
				h := newExchangeHub(t, exchangeOptions{
					postgres: backend == "postgres",
					wrap:     func(st store.Store) store.Store { mid.Store = st; return mid },
				})
				conf := h.oauth2Config("agent", h.secrets["agent"], "notes.read")
				tok, err := h.codeFlowToken(h.Browser(), conf, h.resA, []string{"notes.read"})
				if err != nil {
					t.Fatal(err)
				}
				revoked := make(chan int, 1)
				mid.revoke = func() {
					// The agent revokes at /revoke (RFC 7009): its refresh
					// token ends the family, its access token only itself.
					secret := tok.RefreshToken
					if what == "subject token" {
						secret = tok.AccessToken
					}
					req, _ := http.NewRequest(http.MethodPost, h.URL+"/revoke", strings.NewReader(url.Values{"token": {secret}}.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.SetBasicAuth("agent", h.secrets["agent"])
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						revoked <- 0
						return
					}
					resp.Body.Close()
					revoked <- resp.StatusCode
				}
				r := h.exchange("mcp-a", subjectForm(tok.AccessToken, "resource", exchangeResB))
				if status := <-revoked; status != http.StatusOK {
					t.Fatalf("revoke: %d", status)
				}
				if r.status == http.StatusOK {
					in := h.introspect(r.body["access_token"].(string), "mcp-b", h.secrets["mcp-b"])
					t.Fatalf("the exchange issued a token past the revocation (introspection: active=%v)", in["active"])
				}
				if r.body["error"] != oauth.CodeInvalidGrant {
					t.Fatalf("exchange: %d %v, want invalid_grant", r.status, r.body)
				}
			})
		}
	}
}
