package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
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

// shLines returns the lines of a document's ```sh blocks, continuation
// lines joined.
func shLines(doc string) []string {
	var out []string
	inSh := false
	var cur strings.Builder
	for line := range strings.SplitSeq(doc, "\n") {
		switch {
		case line == "```sh":
			inSh = true
		case strings.HasPrefix(line, "```"):
			inSh = false
		case inSh:
			line = strings.TrimSpace(line)
			if cont, ok := strings.CutSuffix(line, `\`); ok {
				cur.WriteString(cont + " ")
				continue
			}
			cur.WriteString(line)
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	return out
}

// TestQuickstartRuns runs docs/quickstart.md as a reader would: every
// agentid command (serve as a hub, on a free port standing in for 8080),
// every curl request, the variables it tells the reader to set from the
// previous output. Each step must succeed, the token must carry only
// notes.read, and the last introspection must answer {"active":false}.
func TestQuickstartRuns(t *testing.T) {
	doc := readRepoFile(t, "docs/quickstart.md")
	t.Chdir(t.TempDir())
	env := map[string]string{"AGENTID_LISTEN": "127.0.0.1:0", "AGENTID_ISSUER": "http://127.0.0.1:8080"}
	var (
		hubURL   string
		lastOut  string
		lastCurl string // the answer of the last curl
		vars     = map[string]string{}
	)
	setVar := regexp.MustCompile(`^([A-Z]+)=…`)
	for _, line := range shLines(doc) {
		if i := strings.Index(line, "  #"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		switch {
		case strings.HasPrefix(line, "go build"):
			// The test binary is the build.
		case setVar.MatchString(line):
			name := setVar.FindStringSubmatch(line)[1]
			var m []string
			switch name {
			case "SECRET":
				m = regexp.MustCompile(`(?m)^client_secret +(\S+)$`).FindStringSubmatch(lastOut)
			case "AT":
				m = regexp.MustCompile(`"access_token":"([^"]+)"`).FindStringSubmatch(lastOut)
			default:
				t.Fatalf("quickstart sets %s, which this test does not know how to fill", name)
			}
			if m == nil {
				t.Fatalf("quickstart: %s cannot be taken from the previous output:\n%s", name, lastOut)
			}
			vars[name] = m[1]
		case strings.HasPrefix(line, "./agentid "):
			args, err := splitWords(strings.TrimPrefix(line, "./agentid "))
			if err != nil {
				t.Fatal(err)
			}
			if args[0] == "serve" {
				h := startServe(t, env, args[1:]...)
				hubURL = h.url
				continue
			}
			code, stdout, stderr := runCLI(t, env, args...)
			if code != 0 {
				t.Fatalf("quickstart %q: exit %d\n%s%s", line, code, stdout, stderr)
			}
			lastOut = stdout
		case strings.HasPrefix(line, "curl "):
			lastOut = quickstartCurl(t, line, hubURL, vars)
			lastCurl = lastOut
		default:
			t.Fatalf("quickstart line %q: this test does not know how to run it", line)
		}
	}
	if !strings.Contains(lastCurl, `"active":false`) {
		t.Errorf("the last introspection answered %s, want {\"active\":false}", lastCurl)
	}
	if _, err := os.Stat("agentid-backup.db"); err != nil {
		t.Errorf("the quickstart's backup: %v", err)
	}
}

// quickstartCurl performs a curl line of the quickstart (-s, -u, -d, one
// URL; POST with data) against the hub at hubURL, and returns the body.
func quickstartCurl(t *testing.T, line, hubURL string, vars map[string]string) string {
	t.Helper()
	words, err := splitWords(line)
	if err != nil {
		t.Fatal(err)
	}
	expand := func(s string) string {
		for k, v := range vars {
			s = strings.ReplaceAll(s, "$"+k, v)
		}
		return s
	}
	var user, target string
	var data []string
	for i := 1; i < len(words); i++ {
		switch w := words[i]; w {
		case "-s":
		case "-u":
			i++
			user = expand(words[i])
		case "-d":
			i++
			data = append(data, expand(words[i]))
		default:
			if strings.HasPrefix(w, "-") || target != "" {
				t.Fatalf("quickstart curl %q: %q is not understood here", line, w)
			}
			target = strings.Replace(w, "http://127.0.0.1:8080", hubURL, 1)
		}
	}
	method, body := "GET", ""
	if len(data) > 0 {
		method, body = "POST", strings.Join(data, "&")
	}
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if u, p, ok := strings.Cut(user, ":"); ok {
		req.SetBasicAuth(u, p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("quickstart %q: %d %s", line, resp.StatusCode, b)
	}
	if strings.HasSuffix(target, "/token") && !strings.Contains(string(b), `"scope":"notes.read"`) {
		t.Errorf("quickstart: the token answer %s does not carry exactly notes.read", b)
	}
	return string(b)
}

// benchDocLines returns the `agentid bench` command lines of
// docs/benchmarks.md, as arguments after the binary: from its fenced
// and indented blocks and its inline code, direct (any binary named agentid…, or
// $BIN) and through scripts/bench.sh, whose flags after the backend (and
// --replicas N) go to `agentid bench --hub … --pid …`. Placeholders the
// document uses for values (PID, <hub>, …, $!) become valid values,
// an elided "…" word is dropped, a missing --hub is added (the docs leave
// it out where it does not matter), and `a|b` alternatives of --scenario
// are checked together. It returns the lines with where each was found.
func benchDocLines(t *testing.T, doc string) (lines [][]string, where []string) {
	t.Helper()
	var texts []string
	fence := regexp.MustCompile("(?s)```[a-z]*\n(.*?)```")
	for _, m := range fence.FindAllStringSubmatch(doc, -1) {
		texts = append(texts, strings.Split(strings.ReplaceAll(m[1], "\\\n", " "), "\n")...)
	}
	prose := fence.ReplaceAllString(doc, "")
	for line := range strings.SplitSeq(prose, "\n") {
		if strings.HasPrefix(line, "    ") { // an indented code block
			texts = append(texts, line)
		}
	}
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(prose, -1) {
		texts = append(texts, strings.ReplaceAll(m[1], "\n", " "))
	}
	binary := regexp.MustCompile(`(^|/)agentid(-\S+)?$|^\$BIN$`)
	for _, text := range texts {
		words, err := splitWords(strings.TrimSpace(text))
		if err != nil {
			continue
		}
		if i := slices.IndexFunc(words, func(w string) bool {
			return w == "&" || w == ";" || w == "|" || w == "#" || strings.HasPrefix(w, ">") || strings.HasSuffix(w, ";")
		}); i >= 0 {
			words = words[:i]
		}
		var args []string
		for i, w := range words {
			if w == "scripts/bench.sh" {
				rest := words[i+1:]
				if len(rest) == 0 {
					break // the script named in prose
				}
				if !slices.Contains([]string{"sqlite", "postgres", "sqlite|postgres"}, rest[0]) {
					t.Errorf("docs/benchmarks.md: %q: scripts/bench.sh takes sqlite or postgres first", text)
					break
				}
				rest = rest[1:]
				if len(rest) >= 2 && rest[0] == "--replicas" {
					if n := rest[1]; n != "N" && !regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(n) {
						t.Errorf("docs/benchmarks.md: %q: --replicas %s is not a number", text, n)
					}
					rest = rest[2:]
				}
				args = append([]string{"bench", "--hub", "http://127.0.0.1:9", "--pid", "12345"}, rest...)
				break
			}
			if binary.MatchString(w) {
				if j := slices.Index(words[i+1:], "bench"); j >= 0 && !slices.ContainsFunc(words[i+1:i+1+j], func(g string) bool { return !strings.HasPrefix(g, "-") && g != "DIR" && !strings.HasSuffix(g, ".yaml") }) {
					args = words[i+1:]
				}
				break
			}
		}
		if args == nil {
			continue
		}
		var out []string
		for k := 0; k < len(args); k++ {
			w := args[k]
			switch {
			case w == "…":
				continue // words left out
			case w == "--config" && k+1 < len(args):
				k++ // a file of the reader's
				continue
			}
			out = append(out, w)
			if k+1 >= len(args) {
				break
			}
			v := args[k+1]
			switch w {
			case "--pid", "--db-pid":
				if _, err := strconv.Atoi(v); err != nil {
					v = "12345"
				}
			case "--hub":
				if !strings.HasPrefix(v, "http") {
					v = "http://127.0.0.1:9"
				}
			case "--scenario":
				v = strings.ReplaceAll(v, "|", ",")
			default:
				continue
			}
			out = append(out, v)
			k++
		}
		if b := slices.Index(out, "bench"); b >= 0 && !slices.Contains(out, "--hub") {
			out = slices.Insert(out, b+1, "--hub", "http://127.0.0.1:9")
		}
		lines = append(lines, out)
		where = append(where, text)
	}
	return lines, where
}

// TestBenchmarksCommandLines: every `agentid bench` and scripts/bench.sh
// command in docs/benchmarks.md is one the current CLI accepts: known
// flags with values it takes (agentid bench's own checks, run for
// real: a usage error is a stale document), so a reader can re-run the
// published measurements. The commands run against a data directory
// that does not exist, so each stops at the store, after the flags.
func TestBenchmarksCommandLines(t *testing.T) {
	lines, where := benchDocLines(t, readRepoFile(t, "docs/benchmarks.md"))
	if len(lines) < 20 {
		t.Fatalf("only %d agentid bench command lines found in docs/benchmarks.md", len(lines))
	}
	t.Chdir(t.TempDir())
	env := map[string]string{"AGENTID_DATA_DIR": filepath.Join(t.TempDir(), "none")}
	for i, args := range lines {
		checkCommandLine(t, "docs/benchmarks.md", args)
		if code, _, stderr := runCLI(t, env, args...); code == exitUsage {
			t.Errorf("docs/benchmarks.md: %q (run as %q): %s", where[i], args, stderr)
		}
	}
	t.Logf("%d command lines checked", len(lines))
}
