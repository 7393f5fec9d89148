package main

import (
	"io"
	"net/http"
	"os"
	"regexp"
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
