package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, for bump-schema

	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/pgtest"
)

// TestScripts runs the CLI scenarios in testdata/*.txtar.
//
// A scenario is a txtar archive: a comment saying what it shows, a
// "-- script --" section, and any further sections, which are written as
// files into the scenario's working directory (a fresh temporary directory;
// the store lives under $WORK/data through AGENTID_DATA_DIR).
//
// Script lines (blank lines and "#" comments are skipped; arguments are
// split on spaces, with '…' and "…" quoting; $WORK expands to the working
// directory; a leading "!" expects failure or a non-match):
//
//	agentid ARGS...      run the CLI in-process; it must exit 0 (with "!": non-zero)
//	stdout REGEXP        the last command's stdout matches (multi-line mode)
//	stderr REGEXP        the last command's stderr matches
//	status N             the last command exited with status N
//	env NAME=VALUE       set an environment variable for later commands
//	stdin FILE           the next command reads the archive file FILE as stdin
//	exists PATH          the file exists
//	perm PATH MODE       the file's permission bits are MODE (octal)
//	bump-schema          record a schema migration newer than this binary knows
//	audit TYPE [CLIENT]  the audit trail holds an event of TYPE (for CLIENT)
func TestScripts(t *testing.T) {
	runScripts(t, "testdata/*.txtar", func(*testing.T) map[string]string { return nil })
}

// TestScriptsPostgres runs the scenarios in testdata/postgres/ against
// PostgreSQL, each in a fresh schema (skipped without AGENTID_TEST_POSTGRES
// locally, a failure in CI).
func TestScriptsPostgres(t *testing.T) {
	runScripts(t, "testdata/postgres/*.txtar", func(t *testing.T) map[string]string {
		return map[string]string{"AGENTID_STORE_DSN": pgtest.FreshSchema(t)}
	})
}

// runScripts runs every scenario matching pattern, with env added to the
// environment of each.
func runScripts(t *testing.T, pattern string, env func(*testing.T) map[string]string) {
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no scenarios match %s", pattern)
	}
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txtar"), func(t *testing.T) {
			data, err := os.ReadFile(abs)
			if err != nil {
				t.Fatal(err)
			}
			runScript(t, parseTxtar(data), env(t))
		})
	}
}

// archive is a parsed txtar file.
type archive struct {
	comment string
	files   []archiveFile
}

type archiveFile struct {
	name string
	data string
}

// parseTxtar parses the txtar format: a comment, then files, each
// introduced by a line "-- NAME --".
func parseTxtar(data []byte) archive {
	var a archive
	var cur *archiveFile
	var b strings.Builder
	flush := func() {
		if cur == nil {
			a.comment = b.String()
		} else {
			cur.data = b.String()
			a.files = append(a.files, *cur)
		}
		b.Reset()
	}
	for line := range strings.SplitAfterSeq(string(data), "\n") {
		trimmed := strings.TrimRight(line, "\r\n")
		if name, ok := txtarMarker(trimmed); ok {
			flush()
			cur = &archiveFile{name: name}
			continue
		}
		b.WriteString(line)
	}
	flush()
	return a
}

func txtarMarker(line string) (string, bool) {
	if !strings.HasPrefix(line, "-- ") || !strings.HasSuffix(line, " --") || len(line) < 7 {
		return "", false
	}
	name := strings.TrimSpace(line[3 : len(line)-3])
	return name, name != ""
}

func (a archive) file(name string) (string, bool) {
	for _, f := range a.files {
		if f.name == name {
			return f.data, true
		}
	}
	return "", false
}

// scriptRun is the state of one scenario.
type scriptRun struct {
	t        *testing.T
	a        archive
	work     string
	env      map[string]string
	stdin    *string
	stdout   string
	stderr   string
	status   int
	ran      bool
	lineno   int
	lastLine string
}

func runScript(t *testing.T, a archive, env map[string]string) {
	if strings.TrimSpace(a.comment) == "" {
		t.Fatal("scenario has no comment saying what it shows")
	}
	script, ok := a.file("script")
	if !ok {
		t.Fatal("scenario has no -- script -- section")
	}
	work := t.TempDir()
	t.Chdir(work)
	for _, f := range a.files {
		if f.name == "script" {
			continue
		}
		p := filepath.Join(work, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := &scriptRun{t: t, a: a, work: work, env: map[string]string{
		"AGENTID_DATA_DIR": filepath.Join(work, "data"),
	}}
	maps.Copy(s.env, env)
	for i, line := range strings.Split(script, "\n") {
		s.lineno = i + 1
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s.exec(line)
	}
}

// fatalf stops the scenario, citing the script line and the last output.
func (s *scriptRun) fatalf(format string, args ...any) {
	s.t.Helper()
	msg := fmt.Sprintf(format, args...)
	if s.ran {
		msg += fmt.Sprintf("\n--- last command: %s (exit %d)\n--- stdout:\n%s--- stderr:\n%s", s.lastLine, s.status, s.stdout, s.stderr)
	}
	s.t.Fatalf("script line %d: %s", s.lineno, msg)
}

func (s *scriptRun) exec(line string) {
	s.t.Helper()
	words, err := splitWords(line)
	if err != nil {
		s.fatalf("%v", err)
	}
	neg := false
	if words[0] == "!" {
		neg, words = true, words[1:]
		if len(words) == 0 {
			s.fatalf("a lone !")
		}
	}
	for i := range words {
		words[i] = strings.ReplaceAll(words[i], "$WORK", s.work)
	}
	cmd, args := words[0], words[1:]
	switch cmd {
	case "agentid":
		s.runAgentid(line, args, neg)
	case "stdout", "stderr":
		if len(args) != 1 {
			s.fatalf("usage: %s REGEXP", cmd)
		}
		if !s.ran {
			s.fatalf("%s before any command", cmd)
		}
		text := s.stdout
		if cmd == "stderr" {
			text = s.stderr
		}
		re, err := regexp.Compile("(?m)" + args[0])
		if err != nil {
			s.fatalf("bad regexp: %v", err)
		}
		if re.MatchString(text) == neg {
			if neg {
				s.fatalf("%s unexpectedly matches %q", cmd, args[0])
			}
			s.fatalf("%s does not match %q", cmd, args[0])
		}
	case "status":
		want, err := strconv.Atoi(strings.Join(args, ""))
		if err != nil || len(args) != 1 || neg {
			s.fatalf("usage: status N")
		}
		if s.status != want {
			s.fatalf("exit status %d, want %d", s.status, want)
		}
	case "env":
		k, v, ok := strings.Cut(strings.Join(args, " "), "=")
		if !ok || neg {
			s.fatalf("usage: env NAME=VALUE")
		}
		s.env[k] = v
	case "stdin":
		if len(args) != 1 || neg {
			s.fatalf("usage: stdin FILE")
		}
		data, ok := s.a.file(args[0])
		if !ok {
			s.fatalf("no archive file %q", args[0])
		}
		s.stdin = &data
	case "exists":
		if len(args) != 1 {
			s.fatalf("usage: exists PATH")
		}
		_, err := os.Stat(args[0])
		if (err == nil) == neg {
			s.fatalf("exists %s: %v (negated: %t)", args[0], err, neg)
		}
	case "perm":
		if len(args) != 2 || neg {
			s.fatalf("usage: perm PATH MODE")
		}
		want, err := strconv.ParseUint(args[1], 8, 32)
		if err != nil {
			s.fatalf("bad mode %q", args[1])
		}
		fi, err := os.Stat(args[0])
		if err != nil {
			s.fatalf("%v", err)
		}
		if got := fi.Mode().Perm(); got != os.FileMode(want) {
			s.fatalf("%s has mode %#o, want %#o", args[0], got, want)
		}
	case "bump-schema":
		s.bumpSchema()
	case "audit":
		if len(args) < 1 || len(args) > 2 {
			s.fatalf("usage: audit TYPE [CLIENT]")
		}
		s.checkAudit(args, neg)
	default:
		s.fatalf("unknown script command %q", cmd)
	}
}

func (s *scriptRun) runAgentid(line string, args []string, wantFail bool) {
	s.t.Helper()
	var stdout, stderr bytes.Buffer
	stdin := strings.NewReader("")
	if s.stdin != nil {
		stdin = strings.NewReader(*s.stdin)
		s.stdin = nil
	}
	s.status = run(context.Background(), args, stdin, &stdout, &stderr, s.lookupEnv)
	s.stdout, s.stderr, s.ran, s.lastLine = stdout.String(), stderr.String(), true, line
	switch {
	case wantFail && s.status == 0:
		s.fatalf("command succeeded, want failure")
	case !wantFail && s.status != 0:
		s.fatalf("command failed")
	}
}

func (s *scriptRun) lookupEnv(k string) (string, bool) {
	v, ok := s.env[k]
	return v, ok
}

// config is the configuration the scenario's commands see.
func (s *scriptRun) config() *config.Config {
	s.t.Helper()
	cfg, err := config.Load("", s.lookupEnv)
	if err != nil {
		s.fatalf("%v", err)
	}
	return cfg
}

// bumpSchema records a migration one past the newest this binary embeds,
// as a newer agentid would have.
func (s *scriptRun) bumpSchema() {
	s.t.Helper()
	cfg := s.config()
	if cfg.IsPostgres() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, cfg.Store.DSN)
		if err != nil {
			s.fatalf("%v", err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version, name)
			SELECT coalesce(max(version), 0) + 1, '9999_from_the_future.sql' FROM schema_migrations`); err != nil {
			s.fatalf("bump-schema: %v", err)
		}
		return
	}
	db, err := sql.Open("sqlite", cfg.Store.DSN)
	if err != nil {
		s.fatalf("%v", err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, name, applied_at)
		SELECT coalesce(max(version), 0) + 1, '9999_from_the_future.sql', 0 FROM schema_migrations`); err != nil {
		s.fatalf("bump-schema: %v", err)
	}
}

// checkAudit looks for an audit event through the store itself.
func (s *scriptRun) checkAudit(args []string, neg bool) {
	s.t.Helper()
	ctx := context.Background()
	st, err := openStore(ctx, s.config(), slog.New(slog.DiscardHandler))
	if err != nil {
		s.fatalf("%v", err)
	}
	defer st.Close()
	f := store.AuditFilter{TenantID: store.DefaultTenant, Type: args[0], Limit: 1000}
	if len(args) == 2 {
		f.ClientID = args[1]
	}
	evs, err := st.ListAudit(ctx, f)
	if err != nil {
		s.fatalf("%v", err)
	}
	found := false
	for _, ev := range evs {
		if ev.Type == f.Type && (f.ClientID == "" || ev.ClientID == f.ClientID) {
			found = true
		}
	}
	if found == neg {
		s.fatalf("audit event %v found: %t", args, found)
	}
}

// splitWords splits a script line on spaces, honouring '…' and "…".
func splitWords(line string) ([]string, error) {
	var words []string
	var b strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				b.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, b.String())
				b.Reset()
				inWord = false
			}
		default:
			b.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if inWord {
		words = append(words, b.String())
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("empty line")
	}
	return words, nil
}

func TestSplitWords(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
		err  bool
	}{
		{name: "plain", in: "agentid clients list", want: []string{"agentid", "clients", "list"}},
		{name: "single quotes keep spaces", in: `stdout 'a b'`, want: []string{"stdout", "a b"}},
		{name: "double quotes keep single", in: `x "it's"`, want: []string{"x", "it's"}},
		{name: "empty quoted word", in: `x ''`, want: []string{"x", ""}},
		{name: "quotes inside a word", in: `--scope=a'b c'`, want: []string{"--scope=ab c"}},
		{name: "runs of spaces", in: "a   b", want: []string{"a", "b"}},
		{name: "unterminated", in: `x 'a`, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := splitWords(tt.in)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %t", err, tt.err)
			}
			if !tt.err && strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseTxtar(t *testing.T) {
	a := parseTxtar([]byte("comment line\n-- script --\nagentid x\n-- a.yaml --\nk: v\n-- not a marker\n"))
	if a.comment != "comment line\n" {
		t.Errorf("comment = %q", a.comment)
	}
	if got, _ := a.file("script"); got != "agentid x\n" {
		t.Errorf("script = %q", got)
	}
	if got, _ := a.file("a.yaml"); got != "k: v\n-- not a marker\n" {
		t.Errorf("a.yaml = %q", got)
	}
	if _, ok := a.file("missing"); ok {
		t.Error("found a file that is not there")
	}
}
