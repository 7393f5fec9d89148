package server

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

// TestGrantRowsOfOneType: rows of one grant type agree on what the
// pipeline checks before the hook, the last of them serves what no match
// took, and metadata and registration see each type once.
func TestGrantRowsOfOneType(t *testing.T) {
	table := defaultGrants()
	for i, g := range table {
		last := true
		for _, o := range table[i+1:] {
			if o.typ != g.typ {
				continue
			}
			last = false
			if o.clientAuth != g.clientAuth || o.public != g.public {
				t.Errorf("rows of %s disagree on clientAuth or public", g.typ)
			}
		}
		if last && g.match != nil {
			t.Errorf("the last row of %s has a match: some requests would find no row", g.typ)
		}
	}
	names := grantTypeNames(table)
	if len(names) != len(slices.Compact(slices.Clone(names))) || len(supportedGrants(table)) != len(names) {
		t.Fatalf("grant types listed more than once: %q", names)
	}
	if n := strings.Count(strings.Join(names, " "), oauth.GrantTokenExchange); n != 1 {
		t.Fatalf("token exchange listed %d times", n)
	}
}

// TestGrantDispatch: a token exchange reaches the row of its kind.
func TestGrantDispatch(t *testing.T) {
	s := &Server{issuer: "https://hub.example", providers: providersPrefix("https://hub.example"), grants: defaultGrants()}
	tests := []struct {
		name string
		req  oauth.TokenRequest
		want int // index in the table
	}{
		{"to a resource", oauth.TokenRequest{GrantType: oauth.GrantTokenExchange, Resources: []string{"https://mcp.example/mcp"}}, 6},
		{"no target", oauth.TokenRequest{GrantType: oauth.GrantTokenExchange}, 6},
		{"for an ID-JAG", oauth.TokenRequest{GrantType: oauth.GrantTokenExchange, RequestedTokenType: oauth.TokenTypeIDJAG, Audiences: []string{"https://as.example"}}, 4},
		{"to a provider", oauth.TokenRequest{GrantType: oauth.GrantTokenExchange, Resources: []string{"https://hub.example/providers/calendar"}}, 5},
		{"to a provider by audience", oauth.TokenRequest{GrantType: oauth.GrantTokenExchange, Audiences: []string{"https://hub.example/providers/calendar"}}, 5},
		{"a provider beside a resource", oauth.TokenRequest{GrantType: oauth.GrantTokenExchange, Resources: []string{"https://mcp.example/mcp", "https://hub.example/providers/calendar"}}, 5},
		{"refresh", oauth.TokenRequest{GrantType: oauth.GrantRefreshToken, Resources: []string{"https://hub.example/providers/calendar"}}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, ok := s.grantFor(&tc.req)
			if !ok || g != &s.grants[tc.want] {
				t.Fatalf("served by %+v, want row %d", g, tc.want)
			}
		})
	}
	if _, ok := s.grantFor(&oauth.TokenRequest{GrantType: "password"}); ok {
		t.Fatal("a grant type outside the table was served")
	}
}

// TestProviderTarget: which resource and audience values name a provider,
// compared in canonical form.
func TestProviderTarget(t *testing.T) {
	s := &Server{issuer: "https://hub.example", providers: providersPrefix("https://hub.example")}
	tests := []struct {
		raw  string
		id   string
		isOK bool
	}{
		{"https://hub.example/providers/calendar", "calendar", true},
		{"https://HUB.example:443/providers/calendar/", "calendar", true},
		{"https://hub.example/providers/", "", false}, // canonical: no trailing slash
		{"https://hub.example/providers/a/b", "a/b", true},
		{"https://hub.example/providersx/calendar", "", false},
		{"https://hub.example/mcp", "", false},
		{"https://evil.example/providers/calendar", "", false},
		{"http://hub.example/providers/calendar", "", false},
		{"https://hub.example/providers/calendar#x", "", false},
		{"calendar", "", false},
	}
	for _, tc := range tests {
		id, ok := s.providerTarget(tc.raw)
		if ok != tc.isOK || id != tc.id {
			t.Errorf("providerTarget(%q) = %q, %v; want %q, %v", tc.raw, id, ok, tc.id, tc.isOK)
		}
	}
}

// FuzzProviderTarget: the shortcut that skips canonicalising a value
// without "providers" or '%' answers exactly as canonicalising it would,
// for issuers with and without a path.
func FuzzProviderTarget(f *testing.F) {
	for _, seed := range []string{"https://hub.example/providers/calendar", "https://HUB.EXAMPLE/PROVIDERS/calendar",
		"https://hub.example/%70roviders/calendar", "https://hub.example/%70roviders/x{", "https://hub.example/base/providers/x",
		"https://providers/x", "HTTPS://PROVIDERS/providers/x", "https://hub.example:443/providers/x/", "https://mcp.example/mcp"} {
		f.Add(seed)
	}
	servers := []*Server{
		{issuer: "https://hub.example", providers: providersPrefix("https://hub.example")},
		{issuer: "https://hub.example/base", providers: providersPrefix("https://hub.example/base")},
		{issuer: "https://providers", providers: providersPrefix("https://providers")},
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, s := range servers {
			var want string
			wantOK := false
			if canon, oe := oauth.CanonicalResource(raw); oe == nil {
				if id, ok := strings.CutPrefix(canon, s.providers); ok {
					want, wantOK = id, true
				}
			}
			if id, ok := s.providerTarget(raw); id != want || ok != wantOK {
				t.Fatalf("issuer %s: providerTarget(%q) = %q, %v; canonically %q, %v", s.issuer, raw, id, ok, want, wantOK)
			}
		}
	})
}

// TestProviderTargetShortcut: an exchange to a resource (every token
// exchange asks the grant table whether it is a retrieval) costs no
// canonicalisation there.
func TestProviderTargetShortcut(t *testing.T) {
	s := &Server{issuer: "https://hub.example", providers: providersPrefix("https://hub.example")}
	if n := testing.AllocsPerRun(100, func() { s.providerTarget("https://mcp-b.example/mcp") }); n != 0 {
		t.Fatalf("%v allocations to find that a resource names no provider", n)
	}
}

// FuzzRetrievalProvider: whatever resource and audience values a request
// carries, the provider a retrieval names is a valid provider id under
// the issuer, or the request is refused with invalid_target.
func FuzzRetrievalProvider(f *testing.F) {
	for _, seed := range []string{"resource=https://hub.example/providers/calendar", "audience=https://hub.example/providers/x&resource=https://hub.example/providers/x",
		"resource=https://hub.example/providers/../mcp", "resource=https://hub.example/providers/a%2Fb", "resource=https://hub.example/providers/"} {
		f.Add(seed)
	}
	s := &Server{issuer: "https://hub.example", providers: providersPrefix("https://hub.example")}
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		req := &oauth.TokenRequest{Resources: v["resource"], Audiences: v["audience"]}
		id, oe := s.retrievalProvider(req)
		if oe != nil {
			if oe.Code != oauth.CodeInvalidTarget {
				t.Fatalf("error %v", oe)
			}
			return
		}
		if !providerIDPattern.MatchString(id) || !s.isRetrieval(req) {
			t.Fatalf("accepted provider %q from %q", id, q)
		}
	})
}

// TestReachScopes: the provider scopes a retrieval may ask for are those
// the subject token's resource scopes reach, and the resource scopes used
// are the ones that reach what is asked.
func TestReachScopes(t *testing.T) {
	cal := &store.ResourceProvider{ProviderID: "calendar", Scopes: map[string][]string{
		"notes.read":  {"calendar.read"},
		"notes.write": {"calendar.read", "calendar.write"},
		"files.read":  {"drive.read"},
	}}
	key := &store.ResourceProvider{ProviderID: "search", Scopes: map[string][]string{"notes.read": {}}}
	tests := []struct {
		name           string
		link           *store.ResourceProvider
		held, asked    []string
		provider, used []string
		bad            bool
	}{
		{name: "one scope reaches it", link: cal, held: []string{"notes.read"}, asked: []string{"calendar.read"}, provider: []string{"calendar.read"}, used: []string{"notes.read"}},
		{name: "two reach it: both are used", link: cal, held: []string{"notes.read", "notes.write"}, asked: []string{"calendar.read"}, provider: []string{"calendar.read"}, used: []string{"notes.read", "notes.write"}},
		{name: "only the one that reaches what is asked", link: cal, held: []string{"notes.read", "notes.write"}, asked: []string{"calendar.write"}, provider: []string{"calendar.write"}, used: []string{"notes.write"}},
		{name: "unrelated held scopes are not used", link: cal, held: []string{"notes.read", "files.read"}, asked: []string{"calendar.read"}, provider: []string{"calendar.read"}, used: []string{"notes.read"}},
		{name: "none asked: all that is reached", link: cal, held: []string{"notes.write", "files.read"}, provider: []string{"calendar.read", "calendar.write", "drive.read"}, used: []string{"notes.write", "files.read"}},
		{name: "beyond the mapping", link: cal, held: []string{"notes.read"}, asked: []string{"calendar.write"}, bad: true},
		{name: "one of two beyond", link: cal, held: []string{"notes.read"}, asked: []string{"calendar.read", "calendar.write"}, bad: true},
		{name: "nothing held reaches it", link: cal, held: []string{"notes.delete"}, bad: true},
		{name: "nothing held", link: cal, bad: true},
		{name: "API key: holding the scope", link: key, held: []string{"notes.read"}, used: []string{"notes.read"}},
		{name: "API key: no scopes to ask", link: key, held: []string{"notes.read"}, asked: []string{"read"}, bad: true},
		{name: "API key: not held", link: key, held: []string{"notes.write"}, bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			provider, used, oe := reachScopes(tc.link, tc.held, tc.asked)
			if tc.bad {
				if oe == nil || oe.Code != oauth.CodeInvalidScope {
					t.Fatalf("got %q %q %v, want invalid_scope", provider, used, oe)
				}
				return
			}
			if oe != nil || !slices.Equal(provider, tc.provider) || !slices.Equal(used, tc.used) {
				t.Fatalf("got %q %q %v, want %q %q", provider, used, oe, tc.provider, tc.used)
			}
		})
	}
}
