package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// introspectRaw introspects tok as clientID and returns the answer's
// bytes.
func (h *hub) introspectRaw(tok, clientID, secret string) []byte {
	h.T.Helper()
	b, err := h.tryIntrospectRaw(tok, clientID, secret)
	if err != nil {
		h.T.Fatal(err)
	}
	return b
}

// tryIntrospectRaw is introspectRaw for any goroutine.
func (h *hub) tryIntrospectRaw(tok, clientID, secret string) ([]byte, error) {
	req, _ := http.NewRequest(http.MethodPost, h.URL+"/introspect", strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("introspect: %d %s %v", resp.StatusCode, b, err)
	}
	return b, nil
}

// digestSwap is a store whose token records, while swapped is set, name
// another digest than the one recorded at minting: the record no longer
// vouches for the token as presented.
type digestSwap struct {
	store.Store
	swapped atomic.Bool
}

func (s *digestSwap) AccessTokenStanding(ctx context.Context, jti string) (*store.TokenStanding, error) {
	ts, err := s.Store.AccessTokenStanding(ctx, jti)
	if err == nil && s.swapped.Load() && len(ts.Digest) > 0 {
		ts.Digest = bytes.Repeat([]byte{0x5a}, len(ts.Digest))
	}
	return ts, err
}

// TestIntrospectionMemo: a token introspected again is answered from the
// memo of what its bytes say (introspect_memo.go) — byte for byte the
// first answer, user claims included, with no signature check — and the
// memo never vouches for a token on its own: when the token's record names
// another digest, the token is judged by its signature again, and the
// memo serves nothing for it. (TestIntrospectionInactiveAtOnce covers
// revocation, disables and key withdrawal after memo hits.) Many
// introspections at once share the entries (run with -race).
func TestIntrospectionMemo(t *testing.T) {
	backends := map[string]func(t *testing.T) store.Store{
		"sqlite":   func(t *testing.T) store.Store { return openSQLiteStore(t, filepath.Join(t.TempDir(), "agentid.db")) },
		"postgres": func(t *testing.T) store.Store { return openPostgresStore(t) },
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st := &digestSwap{Store: open(t)}
			h := &hub{servertest.NewOn(t, st)}
			res, err := h.Store.GetResource(ctx, store.DefaultTenant, h.Resource)
			if err != nil {
				t.Fatal(err)
			}
			res.UserClaims = map[string]string{"email": store.UserClaimEmail}
			if err := h.Store.UpdateResource(ctx, res, nil); err != nil {
				t.Fatal(err)
			}
			rs := h.AddClient(&store.Client{ID: "notes-mcp", GrantTypes: []string{"client_credentials"}})
			h.LinkResourceServer("notes-mcp")
			secret := h.AddClient(&store.Client{ID: "agent", RedirectURIs: []string{redirectURI},
				GrantTypes: []string{"authorization_code", "client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
			person, err := h.codeFlow(h.Browser(), h.oauth2Config("agent", secret, "notes.read"), []string{"notes.read"})
			if err != nil {
				t.Fatal(err)
			}
			cc := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, "agent", secret).body["access_token"].(string)

			for _, tc := range []struct{ name, tok, email string }{
				{"a person's token with a user claim", person.AccessToken, servertest.TestUserEmail},
				{"a client's own token", cc, ""},
			} {
				t.Run(tc.name, func(t *testing.T) {
					hits, checks := h.Server.IntrospectionMemoHits(), h.Keys.SignatureChecks()
					first := h.introspectRaw(tc.tok, "notes-mcp", rs)
					var got map[string]any
					if err := json.Unmarshal(first, &got); err != nil || got["active"] != true || got["client_id"] != "agent" {
						t.Fatalf("first answer %s, %v", first, err)
					}
					if e, _ := got["email"].(string); e != tc.email {
						t.Fatalf("email %q, want %q", e, tc.email)
					}
					for range 2 {
						if again := h.introspectRaw(tc.tok, "notes-mcp", rs); !bytes.Equal(again, first) {
							t.Fatalf("answer from the memo %s, first answer %s", again, first)
						}
					}
					if n := h.Server.IntrospectionMemoHits() - hits; n != 2 {
						t.Errorf("%d answers from the memo, want 2", n)
					}
					if n := h.Keys.SignatureChecks() - checks; n != 0 {
						t.Errorf("%d signature checks, want 0", n)
					}
				})
			}

			// Many resource servers' calls at once share the entries.
			want := map[string][]byte{person.AccessToken: h.introspectRaw(person.AccessToken, "notes-mcp", rs), cc: h.introspectRaw(cc, "notes-mcp", rs)}
			var wg sync.WaitGroup
			for i := range 8 {
				tok := cc
				if i%2 == 0 {
					tok = person.AccessToken
				}
				wg.Go(func() {
					for range 10 {
						got, err := h.tryIntrospectRaw(tok, "notes-mcp", rs)
						if err != nil || !bytes.Equal(got, want[tok]) {
							t.Errorf("concurrent introspection %s, %v; want %s", got, err, want[tok])
							return
						}
					}
				})
			}
			wg.Wait()

			st.swapped.Store(true)
			hits, checks := h.Server.IntrospectionMemoHits(), h.Keys.SignatureChecks()
			// Still the hub's genuine token, now vouched for by its
			// signature alone.
			if got := h.introspect(cc, "notes-mcp", rs); got["active"] != true {
				t.Fatalf("introspection = %v, want active", got)
			}
			if n := h.Server.IntrospectionMemoHits() - hits; n != 0 {
				t.Errorf("%d answers from the memo for a token its record does not vouch for", n)
			}
			if n := h.Keys.SignatureChecks() - checks; n != 1 {
				t.Errorf("%d signature checks, want 1", n)
			}
		})
	}
}

// TestIntrospectionMemoOtherCaller: the memo answers for a token's bytes,
// never for who asks. Once a token's answer is remembered for the resource
// server of its audience, a confidential client that is neither the
// token's client nor a resource server of its audience still gets exactly
// {"active":false} (RFC 7662 §2.2), and the entitled caller is still
// answered from the memo after it.
func TestIntrospectionMemoOtherCaller(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *hub) {
		rs := h.AddClient(&store.Client{ID: "notes-mcp", GrantTypes: []string{"client_credentials"}})
		h.LinkResourceServer("notes-mcp")
		stranger := h.AddClient(&store.Client{ID: "stranger", GrantTypes: []string{"client_credentials"}})
		secret := h.AddClient(&store.Client{ID: "agent", GrantTypes: []string{"client_credentials"},
			Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
		cc := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, "agent", secret).body["access_token"].(string)

		first := h.introspectRaw(cc, "notes-mcp", rs)
		if again := h.introspectRaw(cc, "notes-mcp", rs); !bytes.Equal(again, first) || !bytes.Contains(first, []byte(`"active":true`)) {
			t.Fatalf("entitled caller: %s then %s, want the same active answer", first, again)
		}
		hits := h.Server.IntrospectionMemoHits()
		for range 2 {
			if got := h.introspectRaw(cc, "stranger", stranger); string(got) != "{\"active\":false}\n" {
				t.Fatalf("a caller with no business with the token: %s, want exactly {\"active\":false}", got)
			}
		}
		if n := h.Server.IntrospectionMemoHits() - hits; n != 0 {
			t.Errorf("%d memo answers to a caller with no business with the token, want 0", n)
		}
		if again := h.introspectRaw(cc, "notes-mcp", rs); !bytes.Equal(again, first) {
			t.Fatalf("entitled caller after the stranger: %s, want %s", again, first)
		}
	})
}
