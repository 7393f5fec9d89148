package arch

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/agentid/agentid"

type pkg struct {
	ImportPath string
	Doc        string
	Imports    []string
	Deps       []string
}

// listPackages runs `go list -json` over the module, without test files:
// tests may reach further (a server test runs on PostgreSQL) than the code.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func rel(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, module), "/") }

// allowed lists, for each package, the project packages it may import
// directly (docs/design.md §2). A package missing here fails the test, so a new
// package gets its arrows decided on purpose.
var allowed = map[string][]string{
	"cmd/agentid":                        {"*"},
	"internal/arch":                      {},
	"internal/audit":                     {"internal/store"},
	"internal/audit/sink":                {"internal/audit", "internal/jsontext", "internal/store"},
	"internal/clients":                   {"internal/audit", "internal/oauth", "internal/policy", "internal/store", "internal/token"},
	"internal/config":                    {},
	"internal/consent":                   {"internal/store", "internal/audit", "internal/oauth"},
	"internal/connectors":                {"internal/keyring", "internal/oauth", "internal/store"},
	"internal/connectors/connectorstest": {},
	"internal/connectors/saml":           {"internal/connectors", "internal/keyring", "internal/store"},
	"internal/connectors/scim":           {"internal/audit", "internal/clients", "internal/connectors", "internal/store", "internal/token"},
	"internal/fetch":                     {},
	"internal/jobs":                      {"internal/store"},
	"internal/changefeed":                {"internal/store"},
	"internal/keyring":                   {},
	"internal/jsontext":                  {},
	"internal/loadtest":                  {"internal/oauth", "mcpauth"},
	"internal/federation":                {"internal/audit", "internal/oauth", "internal/store"},
	"internal/demo":                      {"internal/store", "mcpauth"},
	"internal/oauth":                     {"internal/jsontext"},
	"internal/password":                  {},
	"internal/policy":                    {"internal/store", "internal/oauth", "internal/audit"},
	"internal/server":                    {"internal/audit", "internal/changefeed", "internal/clients", "internal/connectors", "internal/connectors/saml", "internal/connectors/scim", "internal/consent", "internal/federation", "internal/fetch", "internal/keyring", "internal/oauth", "internal/password", "internal/policy", "internal/store", "internal/token", "internal/tracing", "internal/vault", "mcpauth"},
	"internal/server/servertest":         {"internal/changefeed", "internal/keyring", "internal/password", "internal/policy", "internal/server", "internal/store", "internal/store/sqlite", "internal/token", "internal/vault"},
	"internal/store":                     {},
	"internal/store/pgtest":              {},
	"internal/store/migrate":             {"internal/store"},
	"internal/store/postgres":            {"internal/jsontext", "internal/store", "internal/store/migrate"},
	"internal/store/sqlite":              {"internal/jsontext", "internal/store", "internal/store/migrate"},
	"internal/store/storetest":           {"internal/store"},
	"internal/token":                     {"internal/jsontext", "internal/keyring", "internal/store", "internal/oauth"},
	"internal/tracing":                   {"internal/store"},
	"internal/vault":                     {"internal/audit", "internal/fetch", "internal/keyring", "internal/oauth", "internal/store", "internal/token"},
	"internal/vault/vaulttest":           {"internal/store"},
	"mcpauth":                            {},
	"mcpauth/mcpauthtest":                {},
	// A test tool of the conformance script: no project package.
	"scripts/conformance/bearerproxy": {},
}

func TestDependencyDirection(t *testing.T) {
	for _, p := range listPackages(t) {
		name := rel(p.ImportPath)
		ok, known := allowed[name]
		if !known {
			t.Errorf("%s: not in the architecture table; decide which project packages it may import", name)
			continue
		}
		if slices.Contains(ok, "*") {
			continue
		}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module+"/") && !slices.Contains(ok, rel(imp)) {
				t.Errorf("%s imports %s, which docs/design.md §2 does not allow", name, rel(imp))
			}
		}
	}
}

// TestBackendsStayInCmd: only the composition root (and test helpers)
// know the concrete backends and their drivers.
func TestBackendsStayInCmd(t *testing.T) {
	backends := []string{module + "/internal/store/sqlite", module + "/internal/store/postgres", "modernc.org/sqlite", "github.com/jackc/pgx/v5"}
	mayKnow := []string{"cmd/agentid", "internal/store/sqlite", "internal/store/postgres", "internal/store/pgtest", "internal/server/servertest"}
	for _, p := range listPackages(t) {
		name := rel(p.ImportPath)
		if slices.Contains(mayKnow, name) {
			continue
		}
		for _, d := range p.Deps {
			for _, b := range backends {
				if d == b || strings.HasPrefix(d, b+"/") {
					t.Errorf("%s depends on %s; only cmd/agentid may choose a backend", name, d)
				}
			}
		}
	}
}

// TestMcpauthIsALeaf: MCP server authors import mcpauth; it must not drag
// in the hub.
func TestMcpauthIsALeaf(t *testing.T) {
	for _, p := range listPackages(t) {
		name := rel(p.ImportPath)
		if name != "mcpauth" && name != "mcpauth/mcpauthtest" {
			continue
		}
		for _, d := range p.Deps {
			if strings.HasPrefix(d, module+"/internal/") || d == "database/sql" || d == "html/template" {
				t.Errorf("%s depends on %s", name, d)
			}
		}
	}
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package doc comment", rel(p.ImportPath))
		}
	}
}
