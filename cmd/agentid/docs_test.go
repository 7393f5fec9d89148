package main

import (
	"strings"
	"testing"
)

// commandDocs are the documents whose shell blocks are checked by
// TestDocsCommandLines.
var commandDocs = []string{
	"README.md",
	"docs/quickstart.md",
	"docs/operations.md",
	"docs/mcp-server-guide.md",
}

// docCommandLines returns the agentid command lines (the words after the
// binary) of the ```sh blocks of a markdown document: lines starting with
// agentid, ./agentid or go run ./cmd/agentid, continuation lines joined,
// a trailing "  # comment" and anything after a pipe or redirection
// dropped.
func docCommandLines(t *testing.T, doc string) [][]string {
	t.Helper()
	var out [][]string
	inSh := false
	var cur strings.Builder
	for line := range strings.SplitSeq(doc, "\n") {
		switch {
		case line == "```sh":
			inSh = true
			continue
		case strings.HasPrefix(line, "```"):
			inSh = false
			continue
		case !inSh:
			continue
		}
		line = strings.TrimSpace(line)
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(line)
		full := cur.String()
		cur.Reset()
		for _, end := range []string{"  #", " > ", " | ", " >> "} {
			if i := strings.Index(full, end); i >= 0 {
				full = full[:i]
			}
		}
		var rest string
		found := false
		for _, prefix := range []string{"agentid ", "./agentid ", "go run ./cmd/agentid "} {
			if r, ok := strings.CutPrefix(full, prefix); ok {
				rest, found = r, true
				break
			}
		}
		if !found {
			continue
		}
		words, err := splitWords(rest)
		if err != nil {
			t.Errorf("%q: %v", full, err)
			continue
		}
		out = append(out, words)
	}
	return out
}

// TestDocsCommandLines: every agentid command line in the documents'
// shell blocks is one the CLI accepts (a real command, known flags, the
// arguments it takes), so the docs cannot teach a command that does not
// exist or a flag that was renamed.
func TestDocsCommandLines(t *testing.T) {
	total := 0
	for _, doc := range commandDocs {
		lines := docCommandLines(t, readRepoFile(t, doc))
		if len(lines) == 0 {
			t.Errorf("%s: no agentid command lines found", doc)
		}
		for _, args := range lines {
			total++
			checkCommandLine(t, doc, args)
		}
	}
	t.Logf("%d command lines checked", total)
}
