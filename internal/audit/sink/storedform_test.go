package sink_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentid/agentid/internal/audit/sink"
)

// TestSinksWriteSchemaDetailNames: events the store keeps with short
// stored names for their frequent details (store.CompactDetails: grant
// type, jti and the grant type's value among them) reach a file sink with
// the schema's names and values, in the native form and in OCSF, as the
// dispatcher reads them back from the store: no stored short name ("~…")
// leaves the hub. (The text a SQLite store keeps of what it wrote is held
// to the schema's names by storetest's sink conformance test.)
func TestSinksWriteSchemaDetailNames(t *testing.T) {
	for _, format := range []sink.Format{sink.FormatNative, sink.FormatOCSF} {
		t.Run(string(format), func(t *testing.T) {
			tr := newTrail(t)
			ids := tr.write(t, 5)
			path := filepath.Join(t.TempDir(), "audit.ndjson")
			f, err := sink.NewFile(sink.FileOptions{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			runOnce(t, tr, sink.Config{Name: "file", Type: "file", Sink: f, Format: format}, ids[len(ids)-1])
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
			if len(lines) != len(ids) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(ids), b)
			}
			for _, line := range lines {
				if bytes.Contains(line, []byte(`"~`)) {
					t.Errorf("a stored short name left the hub: %s", line)
				}
				if !bytes.Contains(line, []byte("client_credentials")) || !bytes.Contains(line, []byte("jti-")) {
					t.Errorf("the grant type or jti is missing: %s", line)
				}
				if format != sink.FormatNative {
					continue
				}
				var rec struct {
					Details map[string]string `json:"details"`
				}
				if err := json.Unmarshal(line, &rec); err != nil {
					t.Fatalf("line %s: %v", line, err)
				}
				if rec.Details["grant_type"] != "client_credentials" || !strings.HasPrefix(rec.Details["jti"], "jti-") {
					t.Errorf("details %v, want grant_type client_credentials and the jti", rec.Details)
				}
			}
		})
	}
}
