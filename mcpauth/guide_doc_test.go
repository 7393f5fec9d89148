package mcpauth_test

import (
	"os"
	"strings"
	"testing"
)

// TestGuideSnippetsCompile keeps the Go snippets of docs/mcp-server-guide.md
// true: every line of every go block is a line of Example_guide
// (example_guide_test.go), which is compiled and whose output is checked.
func TestGuideSnippetsCompile(t *testing.T) {
	guide, err := os.ReadFile("../docs/mcp-server-guide.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("example_guide_test.go")
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for l := range strings.SplitSeq(string(src), "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	blocks, inGo := 0, false
	for l := range strings.SplitSeq(string(guide), "\n") {
		switch {
		case l == "```go":
			inGo = true
			blocks++
		case strings.HasPrefix(l, "```"):
			inGo = false
		case inGo && strings.TrimSpace(l) != "":
			if !lines[strings.TrimSpace(l)] {
				t.Errorf("docs/mcp-server-guide.md: %q is not a line of Example_guide", strings.TrimSpace(l))
			}
		}
	}
	if blocks < 3 {
		t.Fatalf("docs/mcp-server-guide.md has %d go blocks, want the guide's three", blocks)
	}
}
