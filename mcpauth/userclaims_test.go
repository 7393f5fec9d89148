package mcpauth

import (
	"slices"
	"testing"
)

// TestUserClaims: UserClaim and UserClaimList read the claims about the
// user a resource mapped into its tokens, refuse every registered claim
// name (in any case), and report a claim of the wrong JSON type as absent.
func TestUserClaims(t *testing.T) {
	c, err := parseClaims([]byte(`{"iss":"https://hub.example","sub":"u1","client_id":"a","scope":"read",
		"aud":"https://mcp.example/mcp","exp":2000000000,"iat":1700000000,"jti":"j",
		"department":"R&D","groups":["eng","Site Ops"],"roles":[],"mixed":["a",1],"count":3,"Sub":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	strs := []struct {
		name string
		want string
		ok   bool
	}{
		{"department", "R&D", true},
		{"groups", "", false}, // a list, not a string
		{"count", "", false},
		{"missing", "", false},
		{"sub", "", false}, // registered: read Claims.Subject
		{"Sub", "", false},
		{"scope", "", false},
		{"client_id", "", false},
		{"iss", "", false},
	}
	for _, tt := range strs {
		if got, ok := c.UserClaim(tt.name); got != tt.want || ok != tt.ok {
			t.Errorf("UserClaim(%q) = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
	lists := []struct {
		name string
		want []string
		ok   bool
	}{
		{"groups", []string{"eng", "Site Ops"}, true},
		{"roles", []string{}, true},
		{"mixed", nil, false},
		{"department", nil, false},
		{"aud", nil, false},
		{"missing", nil, false},
	}
	for _, tt := range lists {
		got, ok := c.UserClaimList(tt.name)
		if ok != tt.ok || !slices.Equal(got, tt.want) || (tt.ok && got == nil) {
			t.Errorf("UserClaimList(%q) = %#v, %v; want %#v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}
