package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/password"
)

// startDemo runs `agentid demo ARGS` in-process and returns the first stdout
// line, a reader of the rest, and a stop function returning the exit code.
func startDemo(t *testing.T, args ...string) (string, *bufio.Reader, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		code := run(ctx, append([]string{"demo", "--data-dir", filepath.Join(t.TempDir(), "demo")}, args...), strings.NewReader(""), pw, stderr, func(string) (string, bool) { return "", false })
		pw.Close()
		done <- code
	}()
	out := bufio.NewReader(pr)
	first, err := out.ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("demo printed nothing: %v\nstderr: %s", err, stderr.String())
	}
	stop := func() int {
		cancel()
		go io.Copy(io.Discard, out)
		select {
		case code := <-done:
			return code
		case <-time.After(30 * time.Second):
			t.Fatal("demo did not stop")
			return -1
		}
	}
	t.Cleanup(func() { cancel() })
	return first, out, stop
}

func TestDemoJSON(t *testing.T) {
	first, _, stop := startDemo(t, "--json")
	var info demoInfo
	if err := json.Unmarshal([]byte(first), &info); err != nil {
		t.Fatalf("first line is not one JSON object: %q", first)
	}
	if info.Issuer == "" || !strings.HasSuffix(info.MCPURL, "/mcp") || info.Username != "demo" || len(info.Password) < 16 {
		t.Fatalf("demo info = %+v", info)
	}
	if err := password.Check(info.Password, info.Username); err != nil {
		t.Fatalf("the demo's password breaks the password rule: %v", err)
	}
	resp, err := http.Get(info.Issuer + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("hub metadata: %d", resp.StatusCode)
	}
	// The MCP server challenges for a token, pointing at its metadata.
	resp, err = http.Post(info.MCPURL, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "resource_metadata=") {
		t.Fatalf("MCP server without a token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit code %d after Ctrl-C", code)
	}
}

func TestDemoText(t *testing.T) {
	first, out, stop := startDemo(t)
	var lines []string
	for len(lines) < 8 {
		l, err := out.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	text := first + strings.Join(lines, "")
	for _, want := range []string{"Hub: http://127.0.0.1:", "MCP server: http://127.0.0.1:", "/mcp\n", "username: demo password: "} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// TestDemoAgent runs the scripted agent headless through step-up.
func TestDemoAgent(t *testing.T) {
	_, out, stop := startDemo(t, "--json", "--agent", "--yes")
	deadline := time.Now().Add(60 * time.Second)
	var seen strings.Builder
	for time.Now().Before(deadline) {
		l, err := out.ReadString('\n')
		if err != nil {
			break
		}
		seen.WriteString(l)
		if strings.Contains(l, "agent: done after 4 authorization round trips") {
			if code := stop(); code != 0 {
				t.Fatalf("exit code %d", code)
			}
			return
		}
		if strings.Contains(l, "agent: failed") {
			break
		}
	}
	t.Fatalf("the agent did not finish:\n%s", seen.String())
}
