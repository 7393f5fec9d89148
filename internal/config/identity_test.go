package config

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

// TestLoadIdentityAssertions: the section decodes strictly (lists of
// mappings nested two deep), keeps its defaults, and round-trips through
// the redacted rendering.
func TestLoadIdentityAssertions(t *testing.T) {
	c, err := load([]byte(""), nil, noFiles)
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.IdentityAssertions.Lifetime) != 5*time.Minute || c.IdentityAssertions.Targets != nil {
		t.Fatalf("default %+v", c.IdentityAssertions)
	}
	yaml := `identity_assertions:
  lifetime: 2m
  targets:
    - audience: https://as.example.com
      resources: [https://mcp.example.com/mcp]
      claims: [email]
      clients:
        - client: agent-1
          remote_client_id: remote-1
          scopes: [notes.read, notes.write]
        - client: agent-2
          remote_client_id: remote-2
          scopes: [notes.read]
    - audience: http://127.0.0.1:9000
      resources: [http://127.0.0.1:9000/mcp, http://127.0.0.1:9000/other]
      clients:
        - {client: agent-1, remote_client_id: r, scopes: [x]}
`
	c, err = load([]byte(yaml), nil, noFiles)
	if err != nil {
		t.Fatal(err)
	}
	want := IdentityAssertionsConfig{Lifetime: Duration(2 * time.Minute), Targets: []IdentityTarget{
		{Audience: "https://as.example.com", Resources: []string{"https://mcp.example.com/mcp"}, Claims: []string{"email"}, Clients: []IdentityTargetClient{
			{Client: "agent-1", RemoteClientID: "remote-1", Scopes: []string{"notes.read", "notes.write"}},
			{Client: "agent-2", RemoteClientID: "remote-2", Scopes: []string{"notes.read"}},
		}},
		{Audience: "http://127.0.0.1:9000", Resources: []string{"http://127.0.0.1:9000/mcp", "http://127.0.0.1:9000/other"}, Clients: []IdentityTargetClient{
			{Client: "agent-1", RemoteClientID: "r", Scopes: []string{"x"}},
		}},
	}}
	if !reflect.DeepEqual(c.IdentityAssertions, want) {
		t.Fatalf("got %+v\nwant %+v", c.IdentityAssertions, want)
	}
	out, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	back, err := load(out, nil, noFiles)
	if err != nil || !reflect.DeepEqual(back, c) {
		t.Fatalf("round trip: %v\n%s", err, out)
	}
}

func TestLoadIdentityAssertionProblems(t *testing.T) {
	const client = "      clients: [{client: a, remote_client_id: r, scopes: [s]}]\n"
	tests := []struct {
		name string
		yaml string
		want []wantProblem
	}{
		{"lifetime too long", "identity_assertions:\n  lifetime: 2h\n", []wantProblem{{"identity_assertions.lifetime", 0, []string{"at most 1h"}}}},
		{"lifetime too short", "identity_assertions:\n  lifetime: 1s\n", []wantProblem{{"identity_assertions.lifetime", 0, []string{"at least 30s"}}}},
		{"targets not a list", "identity_assertions:\n  targets: x\n", []wantProblem{{"identity_assertions.targets", 2, []string{"expected a list"}}}},
		{"unknown key", "identity_assertions:\n  targets:\n    - audience: https://a.example\n      resource: [https://a.example/mcp]\n" + client,
			[]wantProblem{
				{"identity_assertions.targets[0].resource", 4, []string{`unknown key "resource"`, `did you mean "resources"`}},
				{"identity_assertions.targets[0].resources", 0, []string{"required"}},
			}},
		{"http audience", "identity_assertions:\n  targets:\n    - audience: http://a.example\n      resources: [https://a.example/mcp]\n" + client,
			[]wantProblem{{"identity_assertions.targets[0].audience", 0, []string{"https"}}}},
		{"audience with query", "identity_assertions:\n  targets:\n    - audience: https://a.example?x=1\n      resources: [https://a.example/mcp]\n" + client,
			[]wantProblem{{"identity_assertions.targets[0].audience", 0, []string{"query"}}}},
		{"duplicate audience", "identity_assertions:\n  targets:\n    - audience: https://a.example\n      resources: [https://a.example/mcp]\n" + client + "    - audience: https://a.example\n      resources: [https://a.example/mcp]\n" + client,
			[]wantProblem{{"identity_assertions.targets[1].audience", 0, []string{"same audience"}}}},
		{"bad resource and claim", "identity_assertions:\n  targets:\n    - audience: https://a.example\n      resources: [mcp]\n      claims: [phone]\n" + client,
			[]wantProblem{
				{"identity_assertions.targets[0].resources[0]", 0, []string{"absolute URL"}},
				{"identity_assertions.targets[0].claims", 0, []string{`unknown claim "phone"`}},
			}},
		{"client incomplete", "identity_assertions:\n  targets:\n    - audience: https://a.example\n      resources: [https://a.example/mcp]\n      clients: [{client: a}, {remote_client_id: r, scopes: [s]}, {client: a, remote_client_id: r, scopes: [s]}]\n",
			[]wantProblem{
				{"identity_assertions.targets[0].clients[0].remote_client_id", 0, []string{"required"}},
				{"identity_assertions.targets[0].clients[0].scopes", 0, []string{"required"}},
				{"identity_assertions.targets[0].clients[1].client", 0, []string{"required"}},
				{"identity_assertions.targets[0].clients[2].client", 0, []string{"same client"}},
			}},
		{"no clients", "identity_assertions:\n  targets:\n    - audience: https://a.example\n      resources: [https://a.example/mcp]\n",
			[]wantProblem{{"identity_assertions.targets[0].clients", 0, []string{"required"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load([]byte(tt.yaml), nil, noFiles)
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("err = %v", err)
			}
			assertProblems(t, ps, tt.want)
		})
	}
}
