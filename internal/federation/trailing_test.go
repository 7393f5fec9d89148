package federation_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentid/agentid/internal/federation"
)

// TestVerifyClaimsTrailingData: an assertion whose claims set, correctly
// signed by a trusted issuer's key, is followed by a closing bracket or
// brace is not a JSON object (RFC 7519 §7.2 step 10, RFC 8259 §2) and is
// refused; white space after the object is allowed.
func TestVerifyClaimsTrailingData(t *testing.T) {
	for _, tc := range []struct {
		tail string
		ok   bool
	}{{"]", false}, {"}", false}, {" ]", false}, {"}{", false}, {" \n", true}} {
		t.Run(tc.tail, func(t *testing.T) {
			f := newFixture(t)
			b, err := json.Marshal(f.claims())
			if err != nil {
				t.Fatal(err)
			}
			opts := (&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), f.key.kid).WithType(jose.ContentType(federation.TypeIDJAG))
			s, err := jose.NewSigner(jose.SigningKey{Algorithm: f.key.alg, Key: f.key.priv}, opts)
			if err != nil {
				t.Fatal(err)
			}
			jws, err := s.Sign(append(b, tc.tail...))
			if err != nil {
				t.Fatal(err)
			}
			raw, err := jws.CompactSerialize()
			if err != nil {
				t.Fatal(err)
			}
			a, err := f.reg.Verify(context.Background(), raw, expectIDJAG)
			if tc.ok {
				if err != nil {
					t.Fatalf("claims followed by white space: %v", err)
				}
				return
			}
			if !isInvalidGrant(err, "not a JSON object") {
				t.Fatalf("claims followed by %q: Verify = %+v, %v; want invalid_grant", tc.tail, a, err)
			}
		})
	}
}
