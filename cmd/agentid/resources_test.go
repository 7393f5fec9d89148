package main

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

func TestBuildResource(t *testing.T) {
	base := resourceSpec{uri: "https://Notes.Example.Test:443/mcp/", name: "Notes", scopes: []string{"notes.read=Read your notes", "notes.delete=Delete your notes"}}
	with := func(f func(*resourceSpec)) resourceSpec {
		s := base
		s.scopes = append([]string(nil), base.scopes...)
		f(&s)
		return s
	}
	tests := []struct {
		name    string
		spec    resourceSpec
		wantErr string
		check   func(t *testing.T, r *store.Resource)
	}{
		{
			name: "canonical URI and scopes in order",
			spec: with(func(s *resourceSpec) { s.sensitive = []string{"notes.delete"}; s.tokenTTL = 5 * time.Minute }),
			check: func(t *testing.T, r *store.Resource) {
				if r.URI != "https://notes.example.test/mcp" || r.Name != "Notes" || r.AccessTokenTTL != 5*time.Minute || r.TenantID != store.DefaultTenant || r.ID == "" {
					t.Errorf("got %+v", r)
				}
				want := []store.Scope{{Name: "notes.read", Description: "Read your notes"}, {Name: "notes.delete", Description: "Delete your notes", Sensitive: true}}
				if len(r.Scopes) != 2 || r.Scopes[0] != want[0] || r.Scopes[1] != want[1] {
					t.Errorf("scopes %+v", r.Scopes)
				}
			},
		},
		{name: "ttl at the cap", spec: with(func(s *resourceSpec) { s.tokenTTL = time.Hour }), check: func(*testing.T, *store.Resource) {}},
		{name: "ttl over the cap", spec: with(func(s *resourceSpec) { s.tokenTTL = time.Hour + time.Second }), wantErr: "at most 1h"},
		{name: "ttl under a second", spec: with(func(s *resourceSpec) { s.tokenTTL = time.Millisecond }), wantErr: "at least 1s"},
		{name: "negative ttl", spec: with(func(s *resourceSpec) { s.tokenTTL = -time.Minute }), wantErr: "at least 1s"},
		{name: "http off loopback", spec: with(func(s *resourceSpec) { s.uri = "http://notes.example.test" }), wantErr: "--uri:"},
		{name: "no name", spec: with(func(s *resourceSpec) { s.name = "" }), wantErr: "--name must not be empty"},
		{name: "control character in name", spec: with(func(s *resourceSpec) { s.name = "a\x07" }), wantErr: "control characters"},
		{name: "long name", spec: with(func(s *resourceSpec) { s.name = strings.Repeat("n", maxDisplayName+1) }), wantErr: "at most"},
		{name: "no scopes", spec: with(func(s *resourceSpec) { s.scopes = nil }), wantErr: "at least one --scope"},
		{name: "duplicate scope", spec: with(func(s *resourceSpec) { s.scopes = append(s.scopes, "notes.read=again") }), wantErr: "given twice"},
		{name: "unknown sensitive", spec: with(func(s *resourceSpec) { s.sensitive = []string{"notes.write"} }), wantErr: "names no --scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := buildResource(tt.spec, time.Now())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, r)
		})
	}
}

func TestParseScopeFlag(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    store.Scope
		wantErr string
	}{
		{name: "simple", in: "notes.read=Read your notes", want: store.Scope{Name: "notes.read", Description: "Read your notes"}},
		{name: "spaces around", in: " notes.read = Read ", want: store.Scope{Name: "notes.read", Description: "Read"}},
		{name: "equals in description", in: "a=x=y", want: store.Scope{Name: "a", Description: "x=y"}},
		{name: "URI-like name", in: "https://api.example.test/read=Read", want: store.Scope{Name: "https://api.example.test/read", Description: "Read"}},
		{name: "no equals", in: "notes.read", wantErr: `want "NAME=DESCRIPTION"`},
		{name: "empty name", in: "=Read", wantErr: "one scope token"},
		{name: "two tokens", in: "a b=Read", wantErr: "one scope token"},
		{name: "quote in name", in: `a"b=Read`, wantErr: "one scope token"},
		{name: "empty description", in: "a=", wantErr: "must not be empty"},
		{name: "newline in description", in: "a=x\ny", wantErr: "control characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseScopeFlag(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// FuzzParseScopeFlag: whatever is accepted is one valid scope token and a
// displayable description, and re-parses to itself.
func FuzzParseScopeFlag(f *testing.F) {
	for _, s := range []string{"notes.read=Read your notes", "a=b", "=", "a b=c", "a=\x00", "ä=ö", "x==", "\"=\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		sc, err := parseScopeFlag(in)
		if err != nil {
			return
		}
		toks, oe := oauth.ParseScope(sc.Name)
		if oe != nil || len(toks) != 1 || toks[0] != sc.Name {
			t.Fatalf("accepted name %q is not one scope token", sc.Name)
		}
		if sc.Description == "" || !utf8.ValidString(sc.Description) || checkDisplayText("d", sc.Description, maxDescription) != nil {
			t.Fatalf("accepted description %q", sc.Description)
		}
		again, err := parseScopeFlag(sc.Name + "=" + sc.Description)
		if err != nil || again != sc {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, sc)
		}
	})
}
