package server_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// TestAccessTokenJTIFollowsClock: the jtis of access tokens issued one
// after another on the hub's clock grow in byte order, so that their
// records append at the right edge of the jti index (token.NewJTI); one
// issued at the same instant is still a new jti, and each is recorded.
// Random ids would be in order with probability 1/20!.
func TestAccessTokenJTIFollowsClock(t *testing.T) {
	clk := newFakeClock()
	h := newHub(t, withClock(clk))
	secret := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
	issue := func() string {
		t.Helper()
		rec := h.tokenFrom("10.2.0.1", "bot", secret)
		if rec.Code != http.StatusOK {
			t.Fatalf("token: %d %s", rec.Code, rec.Body)
		}
		var resp struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
		jti, _ := jwtClaims(t, resp.AccessToken)["jti"].(string)
		if at, err := h.Store.GetAccessToken(t.Context(), jti); err != nil || at.ClientID != "bot" {
			t.Fatalf("record of jti %q: %+v, %v", jti, at, err)
		}
		return jti
	}
	prev := issue()
	for i := range 20 {
		clk.Advance(time.Duration(1+i%3) * time.Millisecond)
		jti := issue()
		if jti <= prev {
			t.Fatalf("token %d: jti %q does not follow %q", i, jti, prev)
		}
		if same := issue(); same == jti {
			t.Fatalf("two tokens of one instant share jti %q", jti)
		}
		prev = jti
	}
}
