package main

import (
	"strings"
	"testing"
)

// TestPrintDemoHintsNameDataDir: every command the demo suggests reaches the
// demo's own data directory, the scripted agent's too (without --data-dir it
// would start another demo on ./agentid-demo).
func TestPrintDemoHintsNameDataDir(t *testing.T) {
	var out strings.Builder
	printDemo(&out, demoInfo{Issuer: "http://127.0.0.1:8080", MCPURL: "http://127.0.0.1:8081/mcp", DataDir: "/tmp/my demo"}, "/opt/x/agentid")
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "/opt/x/agentid ") && !strings.Contains(line, "/opt/x/agentid --data-dir '/tmp/my demo' ") {
			t.Errorf("hint without the data directory: %q", line)
		}
	}
	if !strings.Contains(out.String(), "/opt/x/agentid --data-dir '/tmp/my demo' demo --agent --yes") {
		t.Errorf("no scripted-agent hint with the data directory:\n%s", out.String())
	}
}
