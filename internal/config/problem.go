package config

import (
	"strconv"
	"strings"
)

// Problem is one thing wrong with a configuration. Its text never contains
// a secret value.
type Problem struct {
	// Setting is the dotted YAML path of the setting concerned
	// ("tokens.access_token_ttl"), or "" for a problem with the file as a
	// whole. For an unknown key it is the path the key would have had.
	Setting string
	// Line is the 1-based line in the config file, or 0 when the problem
	// does not come from the file.
	Line int
	// Env is the environment variable the problem came from, if any.
	Env string
	// Msg describes the problem, naming the setting.
	Msg string
}

func (p *Problem) Error() string {
	var b strings.Builder
	if p.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteString(": ")
	}
	if p.Env != "" {
		b.WriteString(p.Env)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found at once, in the order found: the file
// first, then the environment, then secret references, then Validate.
type Problems []*Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As reach each *Problem.
func (ps Problems) Unwrap() []error {
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errs
}

// err returns ps as an error, or a true nil when there are none.
func (ps Problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// add records a problem about setting, formatting Msg as "setting: msg".
func (ps *Problems) add(setting string, line int, env, msg string) {
	full := msg
	if setting != "" {
		full = setting + ": " + msg
	}
	*ps = append(*ps, &Problem{Setting: setting, Line: line, Env: env, Msg: full})
}

// addRaw records a problem whose message already says what it is about.
func (ps *Problems) addRaw(setting string, line int, msg string) {
	*ps = append(*ps, &Problem{Setting: setting, Line: line, Msg: msg})
}
