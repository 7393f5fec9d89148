package storetest

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/agentid/agentid/internal/store"
)

// testAccessTokenDigest: the SHA-256 of an access token as minted
// (AccessToken.Digest) is written by every form of issuance — plain, with
// the live check, continuing a family, a token exchange — and read back by
// GetAccessToken; a record without one (as before migration 0019, or
// written by revoking an unrecorded token) reads back nil, and revoking a
// recorded token keeps its digest.
func testAccessTokenDigest(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	c, u := liveFixture(t, s, tn)
	digestOf := func(name string) []byte {
		sum := sha256.Sum256([]byte(name))
		return sum[:]
	}
	wantDigest := func(t *testing.T, jti string, want []byte) {
		t.Helper()
		got, err := s.GetAccessToken(ctx(t), jti)
		must(t, "GetAccessToken", err)
		if want == nil && got.Digest != nil || !bytes.Equal(got.Digest, want) {
			t.Fatalf("digest %x, want %x", got.Digest, want)
		}
	}
	subject := accessToken(tn, uniq("g"), c.ID, u.ID, "https://r/", "a")
	subject.Digest = digestOf("subject")
	issue(t, s, nil, subject)
	for name, iss := range map[string]*store.Issuance{
		"plain":               {AccessToken: accessToken(tn, "", c.ID, u.ID, "https://r/", "a")},
		"live check":          {AccessToken: accessToken(tn, "", c.ID, "", "https://r/", "a"), Check: &store.LiveCheck{TenantID: tn, ClientID: c.ID}},
		"family":              checkedIssuance(tn, uniq("g"), c, u),
		"exchange":            exchangeIssuance(subject, c, u),
		"no digest":           {AccessToken: accessToken(tn, "", c.ID, u.ID, "https://r/", "a")},
		"exchange, no digest": exchangeIssuance(subject, c, u),
	} {
		t.Run(name, func(t *testing.T) {
			var want []byte
			if name != "no digest" && name != "exchange, no digest" {
				want = digestOf(name)
			}
			iss.AccessToken.Digest = want
			must(t, "IssueTokens", s.IssueTokens(ctx(t), iss))
			wantDigest(t, iss.AccessToken.JTI, want)
		})
	}
	t.Run("revocation", func(t *testing.T) {
		must(t, "RevokeAccessToken", s.RevokeAccessToken(ctx(t), &store.AccessToken{JTI: subject.JTI, TenantID: tn, ClientID: c.ID, ExpiresAt: subject.ExpiresAt}, base(), nil))
		wantDigest(t, subject.JTI, subject.Digest)
		unrecorded := &store.AccessToken{JTI: uniq("jti"), TenantID: tn, ClientID: c.ID, ExpiresAt: subject.ExpiresAt}
		must(t, "RevokeAccessToken", s.RevokeAccessToken(ctx(t), unrecorded, base(), nil))
		wantDigest(t, unrecorded.JTI, nil)
	})
}
