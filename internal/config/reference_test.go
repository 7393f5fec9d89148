package config

import (
	"flag"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

var updateDocs = flag.Bool("update", false, "rewrite the settings table of docs/configuration.md from the schema")

const (
	configDoc      = "../../docs/configuration.md"
	refBeginMarker = "<!-- settings table: generated from internal/config by `go test ./internal/config -run TestConfigurationReference -update`; do not edit -->\n"
	refEndMarker   = "<!-- end of the generated settings table -->\n"
)

// TestConfigurationReference keeps the settings table of
// docs/configuration.md generated: it is ReferenceTable between the two
// markers, and the test fails when it is not (run with -update to rewrite
// it).
func TestConfigurationReference(t *testing.T) {
	b, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, refBeginMarker)
	j := strings.Index(doc, refEndMarker)
	if i < 0 || j < i {
		t.Fatalf("docs/configuration.md lacks the markers of the generated settings table:\n%s%s", refBeginMarker, refEndMarker)
	}
	want := doc[:i+len(refBeginMarker)] + ReferenceTable() + doc[j:]
	if *updateDocs {
		if err := os.WriteFile(configDoc, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want != doc {
		got := doc[i+len(refBeginMarker) : j]
		t.Errorf("the settings table of docs/configuration.md is stale: run go test ./internal/config -run TestConfigurationReference -update\n%s",
			firstLineDiff(got, ReferenceTable()))
	}
}

func firstLineDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d of the table:\n  have %s\n  want %s", i+1, gl, wl)
		}
	}
	return ""
}

// TestSettingDocsNameSettings: settingDocs documents only settings that
// exist (a renamed setting must take its documentation along).
func TestSettingDocsNameSettings(t *testing.T) {
	paths := map[string]bool{}
	for _, r := range referenceRows() {
		paths[r.path] = true
	}
	for p := range settingDocs {
		if !paths[p] {
			t.Errorf("settingDocs documents %q, which is no setting", p)
		}
	}
	// Every list is in the table, explained.
	for _, r := range referenceRows() {
		if r.fileOnly && settingDocs[r.path].Note == "" {
			t.Errorf("the list %s has no note in settingDocs", r.path)
		}
	}
}

// TestSettingDocBounds checks every bound and enumeration the reference
// table states against the loader: each bound is accepted and the value
// just past it refused; each listed value is accepted and another one
// refused. So the table cannot promise what Validate does not do.
func TestSettingDocBounds(t *testing.T) {
	rows := map[string]refRow{}
	for _, r := range referenceRows() {
		rows[r.path] = r
	}
	// What a value needs besides itself to be valid.
	needs := map[string]map[string]string{
		"AGENTID_REGISTRATION_MODE=token": {"AGENTID_REGISTRATION_INITIAL_ACCESS_TOKEN_FILE": "iat.txt"},
	}
	files := func(name string) ([]byte, error) {
		if name == "iat.txt" {
			return []byte(strings.Repeat("t", minInitialAccessTokenLen) + "\n"), nil
		}
		return noFiles(name)
	}
	accepts := func(env, val string) error {
		m := map[string]string{env: val}
		for k, v := range needs[env+"="+val] {
			m[k] = v
		}
		_, err := load(nil, envMap(m), files)
		return err
	}
	format := func(typ reflect.Type, n int64) string {
		if typ == durationType {
			return time.Duration(n).String()
		}
		return strconv.FormatInt(n, 10)
	}
	// The smallest step past a bound: 1 for integers, 1ms for durations.
	step := func(typ reflect.Type) int64 {
		if typ == durationType {
			return int64(time.Millisecond)
		}
		return 1
	}
	checked := 0
	for path, d := range settingDocs {
		r, ok := rows[path]
		if !ok || r.fileOnly {
			continue
		}
		for _, b := range []struct {
			bound string
			dir   int64
		}{{d.Min, -1}, {d.Max, +1}} {
			if b.bound == "" {
				continue
			}
			n, err := parseBound(r.typ, b.bound)
			if err != nil {
				t.Errorf("%s: bound %q: %v", path, b.bound, err)
				continue
			}
			if err := accepts(r.env, format(r.typ, n)); err != nil {
				t.Errorf("%s: the documented bound %s is refused: %v", path, b.bound, err)
			}
			past := n + b.dir*step(r.typ)
			if past == 0 && d.ZeroOK {
				continue
			}
			if past >= 0 || r.typ != durationType {
				if err := accepts(r.env, format(r.typ, past)); err == nil {
					t.Errorf("%s: %s, past the documented bound %s, is accepted", path, format(r.typ, past), b.bound)
				}
			}
			checked++
		}
		if d.ZeroOK {
			if err := accepts(r.env, format(r.typ, 0)); err != nil {
				t.Errorf("%s: 0 is documented as accepted but refused: %v", path, err)
			}
		}
		for _, v := range d.Enum {
			if err := accepts(r.env, v); err != nil {
				t.Errorf("%s: the documented value %q is refused: %v", path, v, err)
			}
			checked++
		}
		if len(d.Enum) > 0 {
			if err := accepts(r.env, "not-"+d.Enum[0]); err == nil {
				t.Errorf("%s: a value outside %v is accepted", path, d.Enum)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d bounds and values checked", checked)
	}
}
