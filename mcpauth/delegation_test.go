package mcpauth_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/agentid/agentid/mcpauth"
	"github.com/agentid/agentid/mcpauth/mcpauthtest"
)

// chain builds a nested act claim, current actor first.
func chain(subs ...string) map[string]any {
	var act map[string]any
	for i := len(subs) - 1; i >= 0; i-- {
		a := map[string]any{"sub": subs[i]}
		if sub, iss, ok := strings.Cut(subs[i], "@"); ok {
			a = map[string]any{"sub": sub, "iss": iss}
		}
		if act != nil {
			a["act"] = act
		}
		act = a
	}
	return act
}

func TestClaimsActors(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.hub.TokenWith(mcpauthtest.TokenOptions{
		Audience: []string{resource}, ClientID: "mcp-b",
		Extra: map[string]any{
			"act":     chain("mcp-b", "mcp-a@https://idp.example.com", "agent-7"),
			"may_act": map[string]any{"sub": "mcp-c", "iss": "https://hub.example.com"},
		},
	})
	c, err := f.v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	want := []mcpauth.Actor{{Subject: "mcp-b"}, {Subject: "mcp-a", Issuer: "https://idp.example.com"}, {Subject: "agent-7"}}
	if got := c.Actors(); !slices.Equal(got, want) {
		t.Errorf("Actors() = %+v, want %+v", got, want)
	}
	if c.MayAct == nil || *c.MayAct != (mcpauth.Actor{Subject: "mcp-c", Issuer: "https://hub.example.com"}) {
		t.Errorf("MayAct = %+v", c.MayAct)
	}
	c.Actors()[0].Subject = "changed"
	if c.Actors()[0].Subject != "mcp-b" {
		t.Error("Actors() exposes the claims' own slice")
	}
	if c.Token() != tok {
		t.Error("Token() is not the verified token")
	}
	for _, s := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", *c), fmt.Sprintf("%#v", *c)} {
		if strings.Contains(s, tok) {
			t.Fatalf("printing Claims shows the token: %s", s)
		}
	}

	plain, err := f.v.Verify(context.Background(), f.hub.Token(resource))
	if err != nil {
		t.Fatal(err)
	}
	if plain.Actors() != nil || plain.MayAct != nil || plain.Act != nil {
		t.Errorf("undelegated token: actors %v, may_act %v", plain.Actors(), plain.MayAct)
	}

	// A chain the checks could not read is no chain at all.
	deep := chain(slices.Repeat([]string{"x"}, 33)...)
	for name, extra := range map[string]map[string]any{
		"act not an object":        {"act": "agent-7"},
		"nested act not an object": {"act": map[string]any{"sub": "a", "act": []any{"b"}}},
		"actor without sub":        {"act": map[string]any{"sub": "a", "act": map[string]any{"iss": "https://i"}}},
		"actor with empty sub":     {"act": map[string]any{"sub": ""}},
		"sub not a string":         {"act": map[string]any{"sub": 7}},
		"iss not a string":         {"act": map[string]any{"sub": "a", "iss": true}},
		"may_act not an object":    {"may_act": "mcp-c"},
		"may_act without sub":      {"may_act": map[string]any{"iss": "https://i"}},
		"chain of 33":              {"act": deep},
	} {
		tok := f.hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, Extra: extra})
		if _, err := f.v.Verify(context.Background(), tok); !errors.Is(err, mcpauth.ErrTokenInvalid) {
			t.Errorf("%s: err = %v, want ErrTokenInvalid", name, err)
		}
	}
}

// TestDelegationPolicy: MaxDelegationDepth and FirstActors refuse with
// ErrDelegationRefused, answered 401 invalid_token by the middleware.
func TestDelegationPolicy(t *testing.T) {
	const hubIss = "hub" // stands for the fixture hub's issuer in actor specs
	cases := []struct {
		name     string
		maxDepth int
		first    []string
		clientID string
		act      []string // current actor first; nil: no act
		ok       bool
	}{
		{name: "no policy, deep chain", act: []string{"a", "b", "c", "d", "e", "f"}, ok: true},
		{name: "depth 3 of 3", maxDepth: 3, act: []string{"c", "b", "agent"}, ok: true},
		{name: "depth 4 of 3", maxDepth: 3, act: []string{"d", "c", "b", "agent"}},
		{name: "depth limit, no act", maxDepth: 1, ok: true},
		{name: "NoDelegation, no act", maxDepth: mcpauth.NoDelegation, ok: true},
		{name: "NoDelegation, one actor", maxDepth: mcpauth.NoDelegation, act: []string{"agent"}},
		{name: "first actor matches", first: []string{"other", "agent"}, act: []string{"mcp-a", "agent"}, ok: true},
		{name: "first actor is not the current one", first: []string{"mcp-a"}, act: []string{"mcp-a", "agent"}},
		{name: "first actor other", first: []string{"agent"}, act: []string{"mcp-a", "rogue"}},
		{name: "first actor from another issuer", first: []string{"agent"}, act: []string{"mcp-a", "agent@https://idp.example.com"}},
		{name: "first actor vouched by the hub", first: []string{"agent"}, act: []string{"mcp-a", "agent@" + hubIss}, ok: true},
		{name: "no act: the client is the first actor", first: []string{"agent"}, clientID: "agent", ok: true},
		{name: "no act: other client", first: []string{"agent"}, clientID: "rogue"},
		{name: "both, ok", maxDepth: 2, first: []string{"agent"}, act: []string{"mcp-a", "agent"}, ok: true},
		{name: "both, too deep", maxDepth: 1, first: []string{"agent"}, act: []string{"mcp-a", "agent"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(c *mcpauth.Config, _ *mcpauthtest.Server) {
				c.MaxDelegationDepth = tc.maxDepth
				c.FirstActors = tc.first
			})
			o := mcpauthtest.TokenOptions{Audience: []string{resource}, ClientID: tc.clientID}
			if tc.act != nil {
				subs := slices.Clone(tc.act)
				for i, s := range subs {
					subs[i] = strings.Replace(s, "@"+hubIss, "@"+f.hub.Issuer(), 1)
				}
				o.Extra = map[string]any{"act": chain(subs...)}
			}
			tok := f.hub.TokenWith(o)
			_, err := f.v.Verify(context.Background(), tok)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, mcpauth.ErrDelegationRefused) || !errors.Is(err, mcpauth.ErrTokenInvalid) {
				t.Fatalf("err = %v, want ErrDelegationRefused", err)
			}
			rec, s := serve(t, mcpauth.Middleware(f.v, mcpauth.MiddlewareOptions{}), request("POST", tok, "{}"))
			if ch := challenge(t, rec); rec.Code != 401 || ch["error"] != "invalid_token" || s.called {
				t.Fatalf("middleware: status %d, challenge %v, handler called %v", rec.Code, ch, s.called)
			}
		})
	}
}

func TestDelegationConfig(t *testing.T) {
	for name, cfg := range map[string]mcpauth.Config{
		"depth below NoDelegation": {Issuer: "https://hub.example.com", Resource: resource, MaxDelegationDepth: -2},
		"empty first actor":        {Issuer: "https://hub.example.com", Resource: resource, FirstActors: []string{"a", ""}},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestExchangeEndToEnd: MCP server A verifies the agent's token, exchanges
// it at the test hub for server B, and B sees the user, the chain, the
// narrowed scopes, and enforces its first-actor rule.
func TestExchangeEndToEnd(t *testing.T) {
	const serverB = "https://b.example.com/mcp"
	clk := newClock()
	hub := mcpauthtest.NewServer(t, mcpauthtest.WithClock(clk.Now))
	ctx := context.Background()
	va, err := mcpauth.NewVerifier(ctx, mcpauth.Config{Issuer: hub.Issuer(), Resource: resource, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	vb, err := mcpauth.NewVerifier(ctx, mcpauth.Config{
		Issuer: hub.Issuer(), Resource: serverB, Now: clk.Now, MaxDelegationDepth: 2, FirstActors: []string{"agent-7"},
	})
	if err != nil {
		t.Fatal(err)
	}
	id, secret := hub.IntrospectionCredentials()
	ex, err := mcpauth.NewExchanger(ctx, mcpauth.ExchangerConfig{Issuer: hub.Issuer(), ClientID: id, ClientSecret: secret, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}

	incoming := hub.TokenWith(mcpauthtest.TokenOptions{
		Audience: []string{resource}, Subject: "alice", ClientID: "agent-7", Scopes: []string{"notes:read", "notes:write"},
	})
	ca, err := va.Verify(ctx, incoming)
	if err != nil {
		t.Fatal(err)
	}
	out, err := ex.Exchange(ctx, ca.Token(), serverB, "notes:read")
	if err != nil {
		t.Fatal(err)
	}
	cb, err := vb.Verify(ctx, out.AccessToken)
	if err != nil {
		t.Fatalf("server B refused the exchanged token: %v", err)
	}
	wantChain := []mcpauth.Actor{{Subject: id}, {Subject: "agent-7"}}
	if cb.Subject != "alice" || !slices.Equal(cb.Actors(), wantChain) || !slices.Equal(cb.Scopes, []string{"notes:read"}) {
		t.Errorf("B sees sub %q, actors %+v, scopes %q", cb.Subject, cb.Actors(), cb.Scopes)
	}
	if _, err := va.Verify(ctx, out.AccessToken); !errors.Is(err, mcpauth.ErrWrongAudience) {
		t.Errorf("exchanged token accepted by A: %v", err)
	}
	if _, err := ex.Exchange(ctx, ca.Token(), serverB, "admin"); !isCode(err, "invalid_scope") {
		t.Errorf("widening: err = %v, want invalid_scope", err)
	}

	// A token from another agent is refused at B by FirstActors.
	rogue := hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, Subject: "alice", ClientID: "rogue", Scopes: []string{"notes:read"}})
	out, err = ex.Exchange(ctx, rogue, serverB)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vb.Verify(ctx, out.AccessToken); !errors.Is(err, mcpauth.ErrDelegationRefused) {
		t.Errorf("rogue agent's chain: err = %v, want ErrDelegationRefused", err)
	}
}

func isCode(err error, code string) bool {
	xe, ok := errors.AsType[*mcpauth.ExchangeError](err)
	return ok && xe.Code == code
}
