package token

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/agentid/agentid/internal/store"
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

// userClaimsByMap is UserClaimsOf as it was before the names-only scan:
// every member decoded into a map, the reserved ones dropped. The fuzz
// test holds UserClaimsOf to it.
func userClaimsByMap(raw string) (map[string]json.RawMessage, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, ErrInvalidToken
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(payload, &all); err != nil {
		return nil, err
	}
	var out map[string]json.RawMessage
	for name, v := range all {
		if !store.ReservedClaim(name) {
			if out == nil {
				out = make(map[string]json.RawMessage)
			}
			out[name] = v
		}
	}
	return out, nil
}

// TestOnlyReservedNames: the scan answers true only for an object whose
// every member name, as written, is a reserved claim; nested names,
// brackets and quotes inside strings do not confuse it; anything it cannot
// read by the names' bytes alone is false (the full decode then decides).
func TestOnlyReservedNames(t *testing.T) {
	for _, tc := range []struct {
		json string
		want bool
	}{
		{`{}`, true},
		{` { } `, true},
		{`{"iss":"https://hub","sub":"u-1","aud":["a","b"],"exp":1,"iat":0,"jti":"x"}`, true},
		{`{"act":{"sub":"mcp-a","department":"R&D","act":{"sub":"agent"}},"scope":"a b"}`, true},
		{`{"scope":"a}b{\"c\"]","jti":"\\","cnf":{"jkt":"x"}, "may_act" : { "sub" : "b" } }`, true},
		{`{"SUB":"u-1","Client_ID":"c"}`, true}, // reserved names compare without case
		{`{"iss":"h","department":"R&D"}`, false},
		{`{"department":"R&D"}`, false},
		{`{"\u0069ss":"h"}`, false}, // an escape: the full decode reads it
		{`{"iſs":"h"}`, false},      // a non-ASCII byte
		{`{"iss":"h",}`, false},
		{`{"iss":"h"`, false},
		{`{"iss" "h"}`, false},
		{`["iss"]`, false},
		{`"iss"`, false},
		{``, false},
		{`{"iss":"h"}x`, false},
		{`{"iss":"h\"}`, false},
		{`{"iss":{"a":[1,2}}`, false},
	} {
		if got := onlyReservedNames([]byte(tc.json)); got != tc.want {
			t.Errorf("onlyReservedNames(%s) = %v, want %v", tc.json, got, tc.want)
		}
	}
}

// FuzzUserClaimsOf: for any payload, UserClaimsOf answers as the full
// decode does: the same user claims, an error for the same inputs.
func FuzzUserClaimsOf(f *testing.F) {
	clk := newClock()
	k := newTestKeys(f, newMemStore(), testKeyring(f), clk, AlgES256)
	with := claimsAt(clk.Now())
	with.UserClaims = map[string]any{"groups": []string{"eng"}, "department": "R&D"}
	for _, c := range []*AccessClaims{claimsAt(clk.Now()), with} {
		raw, err := k.Mint(c)
		if err != nil {
			f.Fatal(err)
		}
		payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
		f.Add(string(payload))
	}
	for _, s := range []string{`{}`, `{"iss":"h","x":1}`, `{"\u0069ss":"h"}`, `{"iss":"h",}`, `{"iss":"h","iss":1}`,
		`{"act":{"x":"}"},"sub":"a"}`, `{"sub":"\ud800"}`, `{"iſs":1}`, "{\"sub\":\"a\xff\"}", `{"aud":[1,{"a":"]"}]}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		raw := "e30." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".c2ln"
		got, err := UserClaimsOf(raw)
		want, werr := userClaimsByMap(raw)
		if (err == nil) != (werr == nil) || !reflect.DeepEqual(got, want) {
			t.Fatalf("UserClaimsOf(%q) = %s, %v; the full decode: %s, %v", payload, asText(got), err, asText(want), werr)
		}
	})
}
