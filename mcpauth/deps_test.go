package mcpauth_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps mcpauth a leaf (docs/design.md §2): MCP server authors
// import it, so it must never pull in the hub's internals, a SQL driver
// interface or the HTML template engine, and imports directly only the
// standard library, go-jose and the MCP Go SDK.
func TestDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	pkgs := []string{"github.com/agentid/agentid/mcpauth", "github.com/agentid/agentid/mcpauth/mcpauthtest"}
	list := func(args ...string) []string {
		out, err := exec.Command(goTool, append([]string{"list"}, args...)...).Output()
		if err != nil {
			t.Fatalf("go list %v: %v", args, err)
		}
		return strings.Fields(string(out))
	}

	deps := list(append([]string{"-deps"}, pkgs...)...)
	if len(deps) < 10 {
		t.Fatalf("go list -deps returned only %q", deps)
	}
	for _, d := range deps {
		switch {
		case d == "database/sql", d == "html/template":
			t.Errorf("mcpauth depends on %s", d)
		case strings.HasPrefix(d, "github.com/agentid/agentid/") && !strings.HasPrefix(d, "github.com/agentid/agentid/mcpauth"):
			t.Errorf("mcpauth depends on %s", d)
		}
	}

	allowed := []string{"github.com/go-jose/go-jose/v4", "github.com/modelcontextprotocol/go-sdk/", "github.com/agentid/agentid/mcpauth"}
	for _, p := range pkgs {
		for _, imp := range list("-f", `{{join .Imports " "}}`, p) {
			if !strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
				continue // standard library
			}
			ok := false
			for _, a := range allowed {
				ok = ok || strings.HasPrefix(imp, a)
			}
			if !ok {
				t.Errorf("%s imports %s; only the standard library, go-jose and the MCP Go SDK are allowed", p, imp)
			}
		}
	}
}
