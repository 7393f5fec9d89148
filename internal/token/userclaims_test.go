package token

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestUserClaimsRoundTrip: user claims are written beside the registered
// claims, Verify still reads those as before, and UserClaimsOf returns
// exactly the user claims (never a registered one).
func TestUserClaimsRoundTrip(t *testing.T) {
	clk := newClock()
	k := newTestKeys(t, newMemStore(), testKeyring(t), clk, AlgES256)
	in := claimsAt(clk.Now())
	in.UserClaims = map[string]any{"groups": []string{"eng", "Site Ops"}, "department": "R&D \"core\"", "roles": []string{}}
	raw, err := k.Mint(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := k.Verify(raw, testIssuer)
	if err != nil {
		t.Fatal(err)
	}
	if out.Subject != in.Subject || out.Scope != in.Scope || out.JTI != in.JTI {
		t.Fatalf("registered claims changed: %+v", out)
	}
	got, err := UserClaimsOf(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]json.RawMessage{
		"groups":     json.RawMessage(`["eng","Site Ops"]`),
		"department": json.RawMessage(`"R\u0026D \"core\""`),
		"roles":      json.RawMessage(`[]`),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("UserClaimsOf = %s, want %s", asText(got), asText(want))
	}

	plain, err := k.Mint(claimsAt(clk.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := UserClaimsOf(plain); err != nil || got != nil {
		t.Fatalf("UserClaimsOf a token without user claims = %v, %v", got, err)
	}
	for _, bad := range []string{"", "a.b", "a.!!!.c", "a." + "e30" + ".c" + ".d"} {
		if _, err := UserClaimsOf(bad); err == nil {
			t.Errorf("UserClaimsOf(%q) accepted it", bad)
		}
	}
}

func asText(m map[string]json.RawMessage) string {
	b, _ := json.Marshal(m)
	return string(b)
}
