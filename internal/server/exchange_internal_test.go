package server

import (
	"encoding/json"
	"testing"
)

// FuzzActorClaim: the act and may_act claims of a trusted issuer's JWT are
// read from untrusted JSON. Whatever it holds, reading never panics, never
// yields an actor without a subject, and never nests beyond the bound.
func FuzzActorClaim(f *testing.F) {
	for _, s := range []string{
		`{"sub":"a"}`, `{"sub":"a","iss":"https://i","act":{"sub":"b","act":{"sub":"c"}}}`,
		`{"sub":""}`, `{"act":{"sub":"b"}}`, `[]`, `"x"`, `{"sub":1}`, `{"sub":"a","act":[]}`, `null`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var v any
		if json.Unmarshal([]byte(s), &v) != nil {
			return
		}
		a, err := actorClaim(v, "https://default.example")
		if err != nil {
			return
		}
		if a != nil && a.Depth() > 33 {
			t.Fatalf("depth %d", a.Depth())
		}
		for x := a; x != nil; x = x.Actor {
			if x.Subject == "" || x.Issuer == "" {
				t.Fatalf("actor %+v", x)
			}
		}
	})
}

// TestActorClaim: nesting is kept, unqualified actors are named by the
// default issuer, non-identity members are dropped.
func TestActorClaim(t *testing.T) {
	var v any
	_ = json.Unmarshal([]byte(`{"sub":"b","exp":1,"act":{"sub":"a","iss":"https://other"}}`), &v)
	a, err := actorClaim(v, "https://idp")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(a)
	if string(b) != `{"sub":"b","iss":"https://idp","act":{"sub":"a","iss":"https://other"}}` {
		t.Fatalf("got %s", b)
	}
	deep := `{"sub":"x"}`
	for range 40 {
		deep = `{"sub":"x","act":` + deep + `}`
	}
	_ = json.Unmarshal([]byte(deep), &v)
	if _, err := actorClaim(v, ""); err == nil {
		t.Fatal("a 41-deep chain was read")
	}
}
