package clients

import (
	"testing"

	"github.com/agentid/agentid/internal/store"
)

func TestMatchDomain(t *testing.T) {
	ds := []*store.Domain{
		{Pattern: "*.example.com", Trust: store.DomainAllowed},
		{Pattern: "*.apps.example.com", Trust: store.DomainTrusted},
		{Pattern: "bad.apps.example.com", Trust: store.DomainBlocked},
		{Pattern: "example.org", Trust: store.DomainTrusted},
	}
	for _, tc := range []struct{ host, want string }{
		{"bad.apps.example.com", store.DomainBlocked},
		{"BAD.apps.example.com.", store.DomainBlocked},
		{"good.apps.example.com", store.DomainTrusted},
		{"x.example.com", store.DomainAllowed},
		{"example.com", ""},
		{"notexample.com", ""},
		{"example.org", store.DomainTrusted},
		{"a.example.org", ""},
		{"evil-example.org", ""},
	} {
		got := ""
		if d := MatchDomain(ds, tc.host); d != nil {
			got = d.Trust
		}
		if got != tc.want {
			t.Errorf("MatchDomain(%q) = %q, want %q", tc.host, got, tc.want)
		}
	}
	if got := DomainTrust(ds, "unknown.net"); got != store.DomainAllowed {
		t.Errorf("DomainTrust(unknown) = %q, want allowed", got)
	}
}
