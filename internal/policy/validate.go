package policy

import (
	_ "embed"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	cedar "github.com/cedar-policy/cedar-go"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"
)

// SchemaFile is the name under which Schema's text is reported.
const SchemaFile = "agentid.cedarschema"

//go:embed schema.cedarschema
var schemaText string

// Schema returns the Cedar schema (human-readable format) every policy set
// is validated against.
func Schema() string { return schemaText }

// validator is built once from the embedded schema; it is immutable and safe
// for concurrent use.
var validator = sync.OnceValues(func() (*validate.Validator, error) {
	var s schema.Schema
	s.SetFilename(SchemaFile)
	if err := s.UnmarshalCedar([]byte(schemaText)); err != nil {
		return nil, fmt.Errorf("policy: embedded schema: %w", err)
	}
	r, err := s.Resolve()
	if err != nil {
		return nil, fmt.Errorf("policy: embedded schema: %w", err)
	}
	return validate.New(r, validate.WithStrict()), nil
})

// Problem is one thing wrong with a policy set, at a place in a file.
type Problem struct {
	File     string
	Line     int // 1-based; 0 when unknown
	Column   int // 1-based; 0 when unknown
	PolicyID string
	Message  string
}

// String formats the problem as "file:line:column: message".
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Line, p.Column)
	}
	b.WriteString(": ")
	if p.PolicyID != "" {
		fmt.Fprintf(&b, "policy %q: ", p.PolicyID)
	}
	b.WriteString(p.Message)
	return b.String()
}

// ValidationError lists every problem of a policy set, ordered by file and
// position.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Validate parses every file of a policy set and validates each policy
// against the embedded schema. It reports all problems at once as a
// *ValidationError whose lines read "file:line:column: message". Policy ids
// (the @id annotation) must be unique across the set.
func Validate(files map[string]string) error {
	_, err := parseSet(files)
	return err
}

// parsedPolicy is one policy of a set together with where it came from.
type parsedPolicy struct {
	id     string
	policy *cedar.Policy
	file   string
	source string // the policy's text, from its first annotation to its ';'
}

// parseSet parses and validates files. On success it returns the policies in
// file-name order, then source order.
func parseSet(files map[string]string) ([]parsedPolicy, error) {
	v, err := validator()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)

	var (
		problems []Problem
		out      []parsedPolicy
		seen     = map[string]Problem{}
	)
	for _, name := range names {
		src := files[name]
		list, probs := parseFile(name, src)
		problems = append(problems, probs...)
		for i, fp := range list {
			p, pos := fp.policy, fp.pos
			at := Problem{File: name, Line: pos.Line, Column: pos.Column}
			id, idProblem := policyID(p, name, i)
			if idProblem != "" {
				at.Message = idProblem
				problems = append(problems, at)
			}
			at.PolicyID = id
			if first, dup := seen[id]; dup {
				at.Message = fmt.Sprintf("duplicate policy id (first at %s:%d:%d)", first.File, first.Line, first.Column)
				problems = append(problems, at)
			} else {
				seen[id] = at
			}
			// The validator prefixes messages with the id it is given; the
			// problem carries the id itself.
			if err := v.Policy("", (*xast.Policy)(p.AST())); err != nil {
				for _, e := range flatten(err) {
					at.Message = e.Error()
					problems = append(problems, at)
				}
			}
			out = append(out, parsedPolicy{
				id:     id,
				policy: p,
				file:   name,
				source: policySource(src, pos.Offset),
			})
		}
	}
	if len(problems) > 0 {
		slices.SortStableFunc(problems, func(a, b Problem) int {
			if c := strings.Compare(a.File, b.File); c != 0 {
				return c
			}
			if a.Line != b.Line {
				return a.Line - b.Line
			}
			if a.Column != b.Column {
				return a.Column - b.Column
			}
			return strings.Compare(a.Message, b.Message)
		})
		// The validator may report one problem once per action: keep one,
		// so that the same input always gives the same output.
		problems = slices.Compact(problems)
		return nil, &ValidationError{Problems: problems}
	}
	return out, nil
}

// policyID returns the policy's @id annotation, or "<file>#<n>" (n counted
// from 1) for a policy without one, and a problem text if the annotation is
// unusable.
func policyID(p *cedar.Policy, file string, index int) (id, problem string) {
	if v, ok := p.Annotations()["id"]; ok {
		if strings.TrimSpace(string(v)) == "" {
			return fmt.Sprintf("%s#%d", file, index+1), "empty @id annotation"
		}
		return string(v), ""
	}
	return fmt.Sprintf("%s#%d", file, index+1), ""
}

func flatten(err error) []error {
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range u.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// filePolicy is a parsed policy and its position in its file.
type filePolicy struct {
	policy *cedar.Policy
	pos    cedar.Position
}

// parseFile parses one file. The Cedar parser stops at the first syntax
// error, so when the whole file does not parse each top-level statement is
// parsed on its own, so that every broken policy is reported and the good
// ones are still schema-validated.
func parseFile(name, src string) ([]filePolicy, []Problem) {
	list, err := cedar.NewPolicyListFromBytes(name, []byte(src))
	if err == nil {
		out := make([]filePolicy, len(list))
		for i, p := range list {
			out[i] = filePolicy{policy: p, pos: p.Position()}
		}
		return out, nil
	}
	var (
		out      []filePolicy
		problems []Problem
	)
	var lc lineCounter
	for _, sp := range statements(src) {
		line, col := lc.advance(src, sp.start)
		l, err := cedar.NewPolicyListFromBytes(name, []byte(src[sp.start:sp.end]))
		if err != nil {
			p := parseProblem(name, err)
			p.Line, p.Column = shift(line, col, p.Line, p.Column)
			problems = append(problems, p)
			continue
		}
		for _, p := range l {
			pos := p.Position()
			pos.Line, pos.Column = shift(line, col, pos.Line, pos.Column)
			pos.Offset += sp.start
			out = append(out, filePolicy{policy: p, pos: pos})
		}
	}
	if len(problems) == 0 {
		// The statements parse one by one but the file does not: report the
		// parser's own error rather than accept something it refuses.
		p := parseProblem(name, err)
		p.Line, p.Column = shift(1, 1, p.Line, p.Column)
		return nil, []Problem{p}
	}
	return out, problems
}

// shift converts a line and column within a statement that starts at
// (line0, col0) of its file into the file's line and column.
func shift(line0, col0, line, col int) (int, int) {
	if line <= 0 {
		return line0, col0
	}
	if line == 1 {
		return line0, col0 + col - 1
	}
	return line0 + line - 1, col
}

// parseErrorRE matches the position the Cedar parser puts in its messages:
// "parse error at <input>:3:14 "tok": msg" or "<input>:3:14: msg".
var parseErrorRE = regexp.MustCompile(`^(?:parser error: )?(?:parse error at )?<input>:(\d+):(\d+)(?: ("(?:[^"\\]|\\.)*"))?:? ?`)

// parseProblem turns a parser error into a Problem at the position the
// parser named (line 0 if it named none).
func parseProblem(file string, err error) Problem {
	var line, col int
	msg := err.Error()
	if m := parseErrorRE.FindStringSubmatch(msg); m != nil {
		l, errL := strconv.Atoi(m[1])
		c, errC := strconv.Atoi(m[2])
		if errL == nil && errC == nil && l > 0 {
			line, col = l, c
		}
		msg = msg[len(m[0]):]
		if m[3] != "" {
			msg += " (at " + m[3] + ")"
		}
	} else {
		msg = strings.TrimPrefix(msg, "parser error: ")
	}
	return Problem{File: file, Line: line, Column: col, Message: "syntax error: " + msg}
}

type span struct{ start, end int }

// statements splits Cedar policy text into its top-level statements (see
// statementEnd). Blanks and comments between statements belong to none.
// Trailing text without a ';' is a statement of its own (which then fails to
// parse).
func statements(src string) []span {
	var out []span
	for i := 0; i < len(src); {
		start := skipBlank(src, i)
		if start >= len(src) {
			break
		}
		end := statementEnd(src, start)
		out = append(out, span{start, end})
		i = end
	}
	return out
}

// skipBlank returns the index of the first byte at or after i that is
// neither white space nor inside a comment.
func skipBlank(src string, i int) int {
	for i < len(src) {
		switch {
		case src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r':
			i++
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		default:
			return i
		}
	}
	return i
}

// statementEnd returns the index just after the ';' that ends the statement
// starting at i, or len(src). A ';' ends it when it is outside string
// literals and comments and either outside all brackets or followed by the
// start of a new policy ('@', "permit", "forbid"), so that a stray bracket
// does not swallow the policies after it.
func statementEnd(src string, i int) int {
	depth := 0
	for i < len(src) {
		switch c := src[i]; {
		case c == '"':
			i++
			for i < len(src) && src[i] != '"' {
				if src[i] == '\\' {
					i++
				}
				i++
			}
			i++
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '(' || c == '[' || c == '{':
			depth++
			i++
		case c == ')' || c == ']' || c == '}':
			depth--
			i++
		case c == ';':
			if depth <= 0 || startsPolicy(src[skipBlank(src, i+1):]) {
				return i + 1
			}
			i++
		default:
			i++
		}
	}
	return len(src)
}

// startsPolicy reports whether s begins like a policy: an annotation or an
// effect keyword.
func startsPolicy(s string) bool {
	if strings.HasPrefix(s, "@") {
		return true
	}
	for _, kw := range []string{"permit", "forbid"} {
		if rest, ok := strings.CutPrefix(s, kw); ok {
			if rest == "" || !isIdentByte(rest[0]) {
				return true
			}
		}
	}
	return false
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// lineCounter converts increasing byte offsets into 1-based lines and
// columns (counted in characters, as the Cedar parser counts them), reading
// the text once however many offsets are asked for.
type lineCounter struct {
	off, line, lineStart int
}

func (c *lineCounter) advance(src string, off int) (line, col int) {
	if c.line == 0 {
		c.line = 1
	}
	seg := src[c.off:off]
	if n := strings.Count(seg, "\n"); n > 0 {
		c.line += n
		c.lineStart = c.off + strings.LastIndexByte(seg, '\n') + 1
	}
	c.off = off
	return c.line, utf8.RuneCountInString(src[c.lineStart:off]) + 1
}

// policySource returns the text of the policy starting at byte offset off.
func policySource(src string, off int) string {
	if off < 0 || off > len(src) {
		return ""
	}
	return strings.TrimSpace(src[off:statementEnd(src, off)])
}
