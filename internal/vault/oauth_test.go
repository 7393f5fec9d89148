package vault

import (
	"encoding/base64"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/store"
)

func tokenWith(extra map[string]any) *oauth2.Token {
	return (&oauth2.Token{AccessToken: "x"}).WithExtra(extra)
}

func idToken(payload string) string {
	return "e30." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".sig"
}

func TestTokenLabel(t *testing.T) {
	p := &store.Provider{ID: "calendar", Name: "Calendar"}
	cases := []struct {
		name  string
		extra map[string]any
		want  string
	}{
		{"no id token", nil, "Calendar"},
		{"email", map[string]any{"id_token": idToken(`{"email":"ada@example.com","name":"Ada"}`)}, "ada@example.com"},
		{"username", map[string]any{"id_token": idToken(`{"preferred_username":"ada"}`)}, "ada"},
		{"control characters dropped", map[string]any{"id_token": idToken(`{"name":"Ada\u0000\nL"}`)}, "AdaL"},
		{"long name capped", map[string]any{"id_token": idToken(`{"name":"` + strings.Repeat("é", 80) + `"}`)}, strings.Repeat("é", 50)},
		{"not a JWT", map[string]any{"id_token": "garbage"}, "Calendar"},
		{"payload not JSON", map[string]any{"id_token": idToken(`nope`)}, "Calendar"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := tokenLabel(tokenWith(c.extra), p); got != c.want {
				t.Errorf("tokenLabel = %q, want %q", got, c.want)
			}
		})
	}
}

func TestGrantedScopes(t *testing.T) {
	p := &store.Provider{Scopes: []string{"a", "b", "c"}}
	cases := []struct {
		scope any
		want  string
	}{
		{nil, "a b"},     // omitted: what was asked
		{"", "a b"},      // empty: the same
		{"b", "b"},       // narrowed
		{"a,c", "a c"},   // comma-separated
		{"a b x", "a b"}, // unknown scopes never recorded
		{"x", ""},        // nothing the provider configured
		{42, "a b"},      // not a string: ignored
	}
	for _, c := range cases {
		extra := map[string]any{}
		if c.scope != nil {
			extra["scope"] = c.scope
		}
		if got := strings.Join(grantedScopes(p, tokenWith(extra), []string{"a", "b"}), " "); got != c.want {
			t.Errorf("scope %v: got %q, want %q", c.scope, got, c.want)
		}
	}
	// A refresh never widens.
	if got := refreshedScopes(p, tokenWith(map[string]any{"scope": "a b c"}), []string{"a"}); strings.Join(got, " ") != "a" {
		t.Errorf("refreshedScopes widened to %v", got)
	}
}

func TestValidErrorCode(t *testing.T) {
	for s, want := range map[string]bool{"invalid_grant": true, "": false, "a b": false, `x"y`: false, "é": false, strings.Repeat("a", 65): false} {
		if validErrorCode(s) != want {
			t.Errorf("validErrorCode(%q) != %v", s, want)
		}
	}
}

// FuzzTokenLabel: the ID token comes from the provider; whatever it
// holds, the label is valid UTF-8, at most 100 bytes, without control
// characters, and never empty.
func FuzzTokenLabel(f *testing.F) {
	f.Add(idToken(`{"email":"a@b"}`))
	f.Add(idToken(`{"name":"` + strings.Repeat("é", 60) + `\u0007"}`))
	f.Add("a.b.c")
	f.Add(idToken("{\"name\":\"\xff\xfe\"}"))
	p := &store.Provider{ID: "p"}
	f.Fuzz(func(t *testing.T, idt string) {
		got := tokenLabel(tokenWith(map[string]any{"id_token": idt}), p)
		if got == "" || len(got) > 100 || !utf8.ValidString(got) {
			t.Fatalf("label %q", got)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("control character in %q", got)
			}
		}
	})
}
