package mcpauth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

type stateClock struct{ t time.Time }

func (c *stateClock) now() time.Time { return c.t }

func testConnector(t testing.TB, secret string, clk *stateClock) *Connector {
	t.Helper()
	c, err := NewConnector(ConnectOptions{StateSecret: []byte(secret), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testBinding(t testing.TB, tool, args, sub string) binding {
	t.Helper()
	b, err := bindingOf(tool, json.RawMessage(args), &Claims{Issuer: "https://hub.example", Subject: sub, ClientID: "agent-1"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const stateSecret = "0123456789abcdef0123456789abcdef-replicas-share-this"

// TestRequestStateMAC: a requestState verifies only for the call it was
// made for, by a server holding the same secret, before it expires.
func TestRequestStateMAC(t *testing.T) {
	clk := &stateClock{t: time.Unix(1_800_000_000, 0)}
	c := testConnector(t, stateSecret, clk)
	bound := testBinding(t, "read_calendar", `{"day":"2026-12-01","limit":5}`, "user-1")
	state, err := c.sealState(statePayload{Key: "connect_calendar", Provider: "calendar"}, bound)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	parts := strings.Split(state, ".")
	forged, _ := json.Marshal(statePayload{Key: "connect_calendar", Provider: "calendar", Expires: clk.t.Add(time.Hour).Unix(), Nonce: "x"})
	tests := []struct {
		name    string
		state   string
		b       binding
		c       *Connector
		advance time.Duration
		want    error
	}{
		{name: "the call it was made for", state: state, b: bound},
		{name: "same arguments, keys reordered, spaces", state: state, b: testBinding(t, "read_calendar", ` { "limit" : 5, "day":"2026-12-01"} `, "user-1")},
		{name: "payload tampered", state: parts[0] + "." + flip(parts[1], 5) + "." + parts[2], b: bound, want: errStateMAC},
		{name: "MAC tampered", state: parts[0] + "." + parts[1] + "." + flip(parts[2], 3), b: bound, want: errStateMAC},
		{name: "payload forged with a later expiry", state: parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2], b: bound, want: errStateMAC},
		{name: "another user", state: state, b: testBinding(t, "read_calendar", `{"day":"2026-12-01","limit":5}`, "user-2"), want: errStateMAC},
		{name: "another tool", state: state, b: testBinding(t, "delete_calendar", `{"day":"2026-12-01","limit":5}`, "user-1"), want: errStateMAC},
		{name: "replayed for other arguments", state: state, b: testBinding(t, "read_calendar", `{"day":"2026-12-02","limit":5}`, "user-1"), want: errStateMAC},
		{name: "number written differently", state: state, b: testBinding(t, "read_calendar", `{"day":"2026-12-01","limit":5.0}`, "user-1"), want: errStateMAC},
		{name: "another agent of the same user", state: state, b: func() binding { b := bound; b.clientID = "agent-2"; return b }(), want: errStateMAC},
		{name: "another issuer", state: state, b: func() binding { b := bound; b.issuer = "https://other.example"; return b }(), want: errStateMAC},
		{name: "a server with another secret", state: state, b: bound, c: testConnector(t, stateSecret+"!", clk), want: errStateMAC},
		{name: "just before expiry", state: state, b: bound, advance: defaultStateTTL - time.Second},
		{name: "expired", state: state, b: bound, advance: defaultStateTTL, want: errStateExpired},
		{name: "other version", state: "v2." + parts[1] + "." + parts[2], b: bound, want: errStateMalformed},
		{name: "missing MAC", state: parts[0] + "." + parts[1], b: bound, want: errStateMalformed},
		{name: "padded MAC", state: state + "=", b: bound, want: errStateMalformed},
		{name: "too long", state: state + strings.Repeat("A", maxStateBytes), b: bound, want: errStateMalformed},
		{name: "empty", state: "", b: bound, want: errStateMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := c
			if tt.c != nil {
				cc = tt.c
			}
			saved := clk.t
			clk.t = clk.t.Add(tt.advance)
			defer func() { clk.t = saved }()
			p, err := cc.openState(tt.state, tt.b)
			if !errors.Is(err, tt.want) || (tt.want != nil) != (err != nil) {
				t.Fatalf("openState = %v, want %v", err, tt.want)
			}
			if err == nil && (p.Key != "connect_calendar" || p.Provider != "calendar") {
				t.Fatalf("payload = %+v", p)
			}
		})
	}
}

// TestRequestStateEquivalentArguments: absent, null and empty arguments
// are one call.
func TestRequestStateEquivalentArguments(t *testing.T) {
	want := testBinding(t, "t", "", "u").argsDigest
	for _, args := range []string{"null", "{}", " { } "} {
		if testBinding(t, "t", args, "u").argsDigest != want {
			t.Errorf("arguments %q differ from none", args)
		}
	}
	if testBinding(t, "t", `{"a":null}`, "u").argsDigest == want {
		t.Error(`{"a":null} is the same as none`)
	}
	if _, err := bindingOf("t", json.RawMessage(`{"a":1}{}`), &Claims{}); err == nil {
		t.Error("trailing data accepted")
	}
}

func TestConnectOptionsValidate(t *testing.T) {
	err := (&ConnectOptions{StateSecret: []byte("short"), StateTTL: -1, CompletionPoll: time.Second}).Validate()
	for _, want := range []string{"StateSecret", "StateTTL", "needs Exchanger"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
}

// FuzzOpenState: no input makes the parser panic or accept a state it did
// not make, and every state it made opens again to the same payload.
func FuzzOpenState(f *testing.F) {
	clk := &stateClock{t: time.Unix(1_800_000_000, 0)}
	// Fixed randomness: every fuzz worker makes the same good state.
	c, err := NewConnector(ConnectOptions{StateSecret: []byte(stateSecret), Now: clk.now, Rand: zeros{}})
	if err != nil {
		f.Fatal(err)
	}
	b := testBinding(f, "read_calendar", `{}`, "user-1")
	good, err := c.sealState(statePayload{Key: "connect_calendar", Provider: "calendar"}, b)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, "calendar")
	f.Add("v1..", "x")
	f.Add("v1.e30."+strings.Repeat("A", 43), "a")
	f.Add("v1.eyJrIjoiY29ubmVjdF94IiwicCI6IngiLCJlIjo5OTk5OTk5OTk5fQ.", "b")
	f.Fuzz(func(t *testing.T, s, provider string) {
		p, err := c.openState(s, b)
		if err == nil && s != good {
			t.Fatalf("accepted a state it did not make: %q → %+v", s, p)
		}
		if !validProviderID(provider) {
			return
		}
		made, err := c.sealState(statePayload{Key: inputKeyPrefix + provider, Provider: provider}, b)
		if err != nil {
			t.Fatal(err)
		}
		p, err = c.openState(made, b)
		if err != nil || p.Provider != provider || p.Key != inputKeyPrefix+provider {
			t.Fatalf("round trip of %q: %+v, %v", provider, p, err)
		}
	})
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) { clear(b); return len(b), nil }
