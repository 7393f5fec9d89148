package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// testInstallations: a person's installations of a client are the redirect
// URIs of their live tokens — refresh tokens not rotated, revoked or
// expired, access tokens not revoked or expired — per user, client and
// tenant, in redirect-URI order; tokens without one (other grants) are no
// installation.
func testInstallations(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	client := "https://" + uniq("app") + ".example.com/client.json"
	const instA, instB, instC = "http://127.0.0.1/callback", "https://app.example.com/cb", "http://[::1]/cb"
	b := base()
	family := func(tenant, user, clientID, redirect string, created time.Time) (*store.RefreshToken, *store.AccessToken) {
		t.Helper()
		g := uniq("g")
		rt := refreshToken(tenant, g, clientID, user, "https://r/", "a")
		at := accessToken(tenant, g, clientID, user, "https://r/", "a")
		rt.RedirectURI, at.RedirectURI, rt.CreatedAt = redirect, redirect, created
		issue(t, s, rt, at)
		return rt, at
	}
	family(tn, "u1", client, instB, b.Add(-2*time.Hour))
	family(tn, "u1", client, instA, b.Add(-3*time.Hour))
	family(tn, "u1", client, instA, b.Add(-time.Hour)) // the newest of A
	family(tn, "u1", client, "", b)                    // no installation
	family(tn, "u2", client, instC, b)                 // another user
	family(tn, "u1", "other-client", instC, b)         // another client
	family("other", "u1", client, instC, b)            // another tenant
	// An installation whose refresh token is revoked and whose access
	// token expired is none any more.
	rt, _ := family(tn, "u1", client, instC, b)
	must(t, "RevokeGrant", s.RevokeGrant(ctx(t), tn, rt.GrantID, b, nil))

	got, err := s.Installations(ctx(t), tn, "u1", client, b.Add(time.Minute))
	must(t, "Installations", err)
	uris := make([]string, len(got))
	for i, in := range got {
		uris[i] = in.RedirectURI
	}
	if want := []string{instA, instB}; !slices.Equal(uris, want) {
		t.Fatalf("Installations = %v, want %v", uris, want)
	}
	if !sameTime(b.Add(-time.Hour), got[0].LastIssuedAt) || !sameTime(b.Add(-2*time.Hour), got[1].LastIssuedAt) {
		t.Errorf("LastIssuedAt = %v, %v", got[0].LastIssuedAt, got[1].LastIssuedAt)
	}

	t.Run("a rotated refresh token counts through its successor only", func(t *testing.T) {
		old, _ := family(tn, "u3", client, instB, b)
		succ := refreshToken(tn, old.GrantID, client, "u3", "https://r/", "a")
		must(t, "RotateRefresh", s.RotateRefresh(ctx(t), old.Hash, b.Add(time.Minute), &store.Issuance{RefreshToken: succ}, nil))
		// The successor carries no installation (the issuer did not label
		// it) and the first access token expired: nothing is live with one.
		got, err := s.Installations(ctx(t), tn, "u3", client, b.Add(time.Hour))
		must(t, "Installations", err)
		if len(got) != 0 {
			t.Errorf("Installations = %+v, want none", got)
		}
	})
	t.Run("access tokens alone", func(t *testing.T) {
		at := accessToken(tn, uniq("g"), client, "u4", "https://r/", "a")
		at.RedirectURI = instC
		issue(t, s, nil, at)
		got, err := s.Installations(ctx(t), tn, "u4", client, b)
		must(t, "Installations", err)
		if len(got) != 1 || got[0].RedirectURI != instC || !got[0].LastIssuedAt.IsZero() {
			t.Errorf("Installations = %+v", got)
		}
		got, err = s.Installations(ctx(t), tn, "u4", client, b.Add(time.Hour))
		must(t, "Installations", err)
		if len(got) != 0 {
			t.Errorf("after expiry: %+v", got)
		}
	})
}
