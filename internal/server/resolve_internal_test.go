package server

import (
	"fmt"
	"testing"

	"github.com/agentid/agentid/internal/oauth"
)

// TestCanonicalFormsMatchCanonicalResource: the memo answers every
// resource parameter, asked once or again, exactly as requestedResource
// does, remembers only accepted ones, and stays bounded.
func TestCanonicalFormsMatchCanonicalResource(t *testing.T) {
	inputs := [][]string{
		nil,
		{"https://mcp.example.com/mcp"},
		{"HTTPS://MCP.Example.COM:443/mcp/"},
		{"http://127.0.0.1:80/mcp/"},
		{"https://mcp.example.com/mcp?x=%2F"},
		{"https://mcp.example.com/mcp#frag"},
		{"http://mcp.example.com/mcp"},
		{""},
		{"https://a.example", "https://b.example"},
	}
	var f canonicalForms
	for round := range 3 {
		for _, raw := range inputs {
			got, gotErr := f.requested(raw)
			want, wantErr := requestedResource(raw)
			if got != want || (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Code != wantErr.Code) {
				t.Fatalf("round %d, %q: memo %q %v, want %q %v", round, raw, got, gotErr, want, wantErr)
			}
		}
	}
	for k := range f.m {
		if _, oe := oauth.CanonicalResource(k); oe != nil {
			t.Errorf("a refused parameter %q was remembered", k)
		}
	}
	if len(f.m) != 4 {
		t.Errorf("%d parameters remembered, want the 4 accepted ones", len(f.m))
	}
	for i := range maxCanonicalForms + 10 {
		if _, oe := f.requested([]string{fmt.Sprintf("https://r%d.example/mcp/", i)}); oe != nil {
			t.Fatal(oe)
		}
		if len(f.m) > maxCanonicalForms {
			t.Fatalf("%d parameters remembered", len(f.m))
		}
	}
}
