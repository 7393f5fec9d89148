package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Size limits: a config file or secret file larger than these is a mistake
// (or an attack on the parser), not a configuration.
const (
	maxConfigSize = 1 << 20
	maxSecretSize = 64 << 10
)

// minInitialAccessTokenLen is the shortest initial access token accepted
// from the token file: 32 characters of a bearer token alphabet carry well
// over 128 bits when generated randomly, and these are compared after
// SHA-256 hashing, not stretched (docs/design.md §7).
const minInitialAccessTokenLen = 32

// Load builds the effective configuration:
//
//  1. defaults;
//  2. the YAML file at path, strictly (path "" → no file);
//  3. environment overrides from lookupEnv, one per setting, named
//     AGENTID_ + the YAML path upper-cased with dots as underscores
//     (tokens.access_token_ttl → AGENTID_TOKENS_ACCESS_TOKEN_TTL); an empty
//     value counts as unset; AGENTID_KEK is an alias of AGENTID_KEK_VALUE;
//  4. secret references: "env:NAME" in store.dsn, kek.value and kek.previous
//     is replaced by the variable NAME from lookupEnv; store.dsn_file is read into
//     store.dsn; registration.initial_access_token_file is read into
//     Registration.InitialAccessTokens;
//  5. derived defaults (issuer from listen; store.dsn and kek.file under
//     data_dir);
//  6. Validate.
//
// A failure to read the file itself is returned wrapped (errors.Is works
// with fs.ErrNotExist). Otherwise every problem of every step is returned at
// once as Problems, and the Config is nil. A nil lookupEnv means an empty
// environment. Relative paths are relative to the working directory.
func Load(path string, lookupEnv func(string) (string, bool)) (*Config, error) {
	var data []byte
	if path != "" {
		b, err := ReadLimited(path, maxConfigSize)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		data = b
	}
	return load(data, lookupEnv, func(p string) ([]byte, error) { return ReadLimited(p, maxSecretSize) })
}

// ReadLimited reads a file of at most limit bytes and fails on more; every
// file an operator points agentid at (config, secrets, policies, keys) is
// read this way.
func ReadLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}

// loader carries one Load through its steps.
type loader struct {
	cfg      *Config
	env      func(string) (string, bool)
	readFile func(string) ([]byte, error)
	probs    Problems
	// failed marks settings whose value could not be established, so that
	// Validate does not report a second, derived problem about them.
	failed map[string]bool
	// fromEnv maps each setting an environment variable set to that
	// variable's name, so that Validate's problems can name it.
	fromEnv map[string]string
}

// load is Load on bytes, with file reading injected for tests and fuzzing.
func load(data []byte, lookupEnv func(string) (string, bool), readFile func(string) ([]byte, error)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	l := &loader{cfg: base(), env: lookupEnv, readFile: readFile, failed: map[string]bool{}, fromEnv: map[string]string{}}
	l.decodeFile(data)
	l.applyEnv()
	l.resolveRefs()
	l.resolveSinkSecrets()
	l.resolveTracingHeaders()
	l.registrationMode()
	l.readTrustedIssuerKeys()
	l.cfg.fillDerived()
	for _, p := range l.cfg.validate() {
		if !l.failed[p.Setting] {
			if p.Env == "" {
				p.Env = l.fromEnv[p.Setting]
			}
			l.probs = append(l.probs, p)
		}
	}
	if err := l.probs.err(); err != nil {
		return nil, err
	}
	return l.cfg, nil
}

func (l *loader) fail(setting string, line int, env, msg string) {
	l.probs.add(setting, line, env, msg)
	l.failed[setting] = true
}

// decodeFile decodes the YAML document into l.cfg. It walks the node tree
// itself instead of using yaml's reflection so that every unknown key,
// duplicate key and type mismatch is reported with its setting and line,
// all at once.
func (l *loader) decodeFile(data []byte) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return // empty file: defaults only
		}
		l.syntaxProblem("invalid YAML", err)
		return
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		l.syntaxProblem("invalid YAML after the first document", err)
	default:
		l.probs.addRaw("", next.Line, "more than one YAML document; the config file must hold exactly one")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return
		}
		root = root.Content[0]
	}
	if isNull(root) {
		return
	}
	l.decodeSection(root, reflect.ValueOf(l.cfg).Elem(), "")
}

// syntaxProblem records a YAML parse error, moving the parser's
// "yaml: line N: …" into Problem.Line so that every problem reads alike.
func (l *loader) syntaxProblem(what string, err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, tail, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil && n > 0 {
				line, msg = n, tail
			}
		}
	}
	l.probs.addRaw("", line, what+": "+msg)
}

func (l *loader) decodeSection(n *yaml.Node, v reflect.Value, prefix string) {
	where := ""
	if prefix != "" {
		where = " in " + prefix
	}
	if n.Kind != yaml.MappingNode {
		subject := "the config file"
		if prefix != "" {
			subject = prefix
		}
		l.probs.addRaw(prefix, n.Line, fmt.Sprintf("%s: expected a mapping of settings, found %s", subject, describe(n)))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			l.probs.addRaw(prefix, k.Line, fmt.Sprintf("keys must be plain strings, found %s%s", describe(k), where))
			continue
		}
		key := k.Value
		path := key
		if prefix != "" {
			path = prefix + "." + key
		}
		if first, dup := seen[key]; dup {
			l.probs.addRaw(path, k.Line, fmt.Sprintf("duplicate key %q%s (first at line %d)", key, where, first))
			continue
		}
		seen[key] = k.Line
		f, ok := sectionField(v.Type(), key)
		if !ok {
			msg := fmt.Sprintf("unknown key %q%s", key, where)
			if s := suggestKey(v.Type(), key); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			l.probs.addRaw(path, k.Line, msg)
			continue
		}
		fv := v.FieldByIndex(f.Index)
		if l.decodeList(val, fv, path) {
			continue
		}
		if isSection(f.Type) {
			if isNull(val) {
				continue // "store:" with nothing under it keeps the defaults
			}
			l.decodeSection(val, fv, path)
			continue
		}
		l.decodeLeaf(val, fv, path)
	}
}

// decodeLeaf sets one setting from its YAML value. A null value keeps the
// default. Scalars must carry the YAML type of the setting: strings quoted
// when they look like numbers, booleans as true/false, durations with a
// unit.
func (l *loader) decodeLeaf(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		l.fail(path, n.Line, "", "expected a single value, found "+describe(n))
		return
	}
	if isNull(n) {
		return
	}
	tag := n.ShortTag()
	var want string
	switch v.Interface().(type) {
	case string:
		want = "!!str"
	case bool:
		want = "!!bool"
	case int:
		want = "!!int"
	case Duration:
		want = "!!str"
	case float64:
		want = "!!float"
		if tag == "!!int" {
			tag = want // 1 is a number too
		}
	}
	if tag != want {
		expect := map[string]string{"!!str": "a string", "!!bool": "true or false", "!!int": "an integer", "!!float": "a number"}[want]
		if _, ok := v.Interface().(Duration); ok {
			expect = "a duration with a unit, such as 90s, 10m or 1h30m"
		}
		hint := ""
		if want == "!!str" && (tag == "!!int" || tag == "!!float" || tag == "!!bool" || tag == "!!timestamp") {
			if _, ok := v.Interface().(string); ok {
				hint = " (quote it)"
			}
		}
		l.fail(path, n.Line, "", fmt.Sprintf("expected %s, found %s%s", expect, describe(n), hint))
		return
	}
	if err := setLeaf(v, n.Value); err != nil {
		l.fail(path, n.Line, "", err.Error())
		return
	}
	// Secrets only by reference in the file (docs/design.md §1 config).
	switch path {
	case "kek.value":
		if n.Value != "" && !strings.HasPrefix(n.Value, "env:") {
			l.fail(path, n.Line, "", "in the config file the key may only be an env:NAME reference (or use kek.file)")
		}
	case "kek.previous":
		if n.Value != "" && !strings.HasPrefix(n.Value, "env:") {
			l.fail(path, n.Line, "", "in the config file the keys may only be an env:NAME reference (or use kek.previous_files)")
		}
	case "tracing.headers":
		if n.Value != "" && !strings.HasPrefix(n.Value, "env:") {
			l.fail(path, n.Line, "", "in the config file the headers may only be an env:NAME reference (or use tracing.headers_file)")
		}
	case "store.dsn":
		if !strings.HasPrefix(n.Value, "env:") && dsnHasPassword(n.Value) {
			l.fail(path, n.Line, "", "contains a password; reference it as env:NAME or put the DSN in store.dsn_file")
		}
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names a node's kind for messages without quoting its value,
// which may be a secret.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias (anchors and aliases are not supported)"
	case yaml.DocumentNode:
		return "a document"
	}
	switch n.ShortTag() {
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "nothing"
	case "!!timestamp":
		return "a timestamp"
	case "!!binary":
		return "binary data"
	}
	return "a value tagged " + fmt.Sprintf("%q", n.Tag)
}

// applyEnv applies one override per setting (see Load for the naming
// rule).
func (l *loader) applyEnv() {
	v := reflect.ValueOf(l.cfg).Elem()
	for _, s := range settings() {
		name := s.env
		val, ok := l.env(name)
		if alias, has := envAliases[s.path]; has {
			if aval, aok := l.env(alias); aok && aval != "" {
				if ok && val != "" {
					l.fail(s.path, 0, alias, fmt.Sprintf("both %s and %s are set; use one", alias, s.env))
					continue
				}
				name, val, ok = alias, aval, true
			}
		}
		if !ok || val == "" {
			continue
		}
		if err := setLeaf(v.FieldByIndex(s.index), val); err != nil {
			l.fail(s.path, 0, name, err.Error())
			continue
		}
		l.fromEnv[s.path] = name
	}
}

// resolveRefs replaces secret references by the secrets.
func (l *loader) resolveRefs() {
	c := l.cfg

	switch {
	case c.Store.DSN != "" && c.Store.DSNFile != "":
		l.fail("store.dsn_file", 0, "", "conflicts with store.dsn; set only one of them")
		l.failed["store.dsn"] = true
	case c.Store.DSNFile != "":
		l.failed["store.dsn"] = true // until the file proves good
		b, err := l.readFile(c.Store.DSNFile)
		if err != nil {
			l.fail("store.dsn_file", 0, "", "cannot read: "+err.Error())
			break
		}
		dsn := strings.TrimSpace(string(b))
		if dsn == "" {
			l.fail("store.dsn_file", 0, "", "the file is empty")
			break
		}
		c.Store.DSN = dsn
		delete(l.failed, "store.dsn")
	case strings.HasPrefix(c.Store.DSN, "env:"):
		if v, ok := l.envRef("store.dsn", c.Store.DSN); ok {
			c.Store.DSN = v
		}
	}

	if c.KEK.Value != "" && c.KEK.File != "" {
		l.fail("kek.value", 0, "", "conflicts with kek.file; set only one of them")
	} else if strings.HasPrefix(c.KEK.Value, "env:") {
		if v, ok := l.envRef("kek.value", c.KEK.Value); ok {
			c.KEK.Value = v
		}
	}

	if strings.HasPrefix(c.KEK.Previous, "env:") {
		if v, ok := l.envRef("kek.previous", c.KEK.Previous); ok {
			c.KEK.Previous = v
		}
	}

	if f := c.Registration.InitialAccessTokenFile; f != "" {
		const setting = "registration.initial_access_token_file"
		b, err := l.readFile(f)
		if err != nil {
			l.fail(setting, 0, "", "cannot read: "+err.Error())
			return
		}
		tokens, errs := parseTokenFile(b)
		for _, e := range errs {
			l.fail(setting, 0, "", e.Error())
		}
		if len(errs) == 0 && len(tokens) == 0 {
			l.fail(setting, 0, "", "the file holds no tokens")
		}
		c.Registration.InitialAccessTokens = tokens
	}
}

// envRef resolves "env:NAME". The problem it reports names the variable,
// never its value.
func (l *loader) envRef(setting, ref string) (string, bool) {
	name := strings.TrimPrefix(ref, "env:")
	if !validEnvName(name) {
		l.fail(setting, 0, "", "invalid reference; want env:NAME with NAME made of letters, digits and underscores")
		return "", false
	}
	v, ok := l.env(name)
	if !ok || v == "" {
		l.fail(setting, 0, "", fmt.Sprintf("references environment variable %s, which is not set or empty", name))
		return "", false
	}
	return v, true
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', 'A' <= r && r <= 'Z', 'a' <= r && r <= 'z':
		case '0' <= r && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// parseTokenFile parses an initial access token file: one token per line,
// surrounding whitespace ignored, blank lines and '#' comments skipped.
// Tokens must be RFC 6750 §2.1 b64token characters, at least
// minInitialAccessTokenLen long. Errors cite the line, never the token.
func parseTokenFile(b []byte) ([]string, []error) {
	var tokens []string
	var errs []error
	for i, line := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		switch {
		case !isB64Token(t):
			errs = append(errs, fmt.Errorf("line %d of the file: not a bearer token (RFC 6750 §2.1 characters only, no spaces)", i+1))
		case len(t) < minInitialAccessTokenLen:
			errs = append(errs, fmt.Errorf("line %d of the file: token shorter than %d characters", i+1, minInitialAccessTokenLen))
		default:
			tokens = append(tokens, t)
		}
	}
	return tokens, errs
}

// isB64Token reports whether s matches RFC 6750 §2.1
// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}
