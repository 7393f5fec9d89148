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
