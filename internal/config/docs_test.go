package config

import (
	"os"
	"strings"
	"testing"
)

// TestDocsListEverySetting keeps docs/configuration.md complete: each
// setting's path and environment variable must appear in the table.
func TestDocsListEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, s := range settings() {
		t.Run(s.path, func(t *testing.T) {
			row := "| `" + s.path + "` |"
			if !strings.Contains(doc, row) {
				t.Errorf("docs/configuration.md has no table row for %s", s.path)
			}
			if !strings.Contains(doc, "`"+s.env+"`") {
				t.Errorf("docs/configuration.md does not name %s", s.env)
			}
		})
	}
	for path, alias := range envAliases {
		if !strings.Contains(doc, "`"+alias+"`") {
			t.Errorf("docs/configuration.md does not name the alias %s of %s", alias, path)
		}
	}
}

// TestDocsProblemExample keeps the example problem report in
// docs/configuration.md true: the configuration it describes yields
// exactly those lines.
func TestDocsProblemExample(t *testing.T) {
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	yaml := "issuer: http://127.0.0.1:8080\n\n\n\n\ntokens:\n  acess_token_ttl: 5m\n\n\n\nstore:\n  auto_migrate: \"yes\"\n"
	_, err = load([]byte(yaml), envMap(map[string]string{"AGENTID_LOG_LEVEL": "verbose"}), noFiles)
	if err == nil {
		t.Fatal("load succeeded")
	}
	for _, p := range problemsOf(t, err) {
		if !strings.Contains(string(b), "\n"+p.Error()+"\n") {
			t.Errorf("docs/configuration.md does not show the problem line %q", p.Error())
		}
	}
}
