package store

import "strings"

// A token event's policy_decisions detail is a JSON array of the verdict
// per requested scope, written by the audit package in one canonical form
// (its fields in a fixed order, empty ones left out):
//
//	[{"scope":"notes.read","allowed":true,"reason":"policy","policies":["p1"]}]
//
// About 90 bytes of every token event, most of them the same names. In a
// stored row (under the coded key, version 2 of the stored form) a value
// in exactly that form is kept as the mark followed by one entry per
// verdict, separated by '|': the verdict ('a' allowed, 'd' denied), the
// reason's code ('p' policy, 'c' ceiling, 'n' consent, nothing when it is
// left out), ';', the scope, ';', the policy ids joined by ',', and, when
// there are errors, ';' and the errors joined by ','. The example above is
// stored as "~ap;notes.read;p1". Any other value — another order or
// spacing, an escaped character, a string holding one of the separators,
// an empty policy id or error — is stored as it is (escaped when it starts
// with the mark), so every value reads back byte for byte
// (FuzzDecisionsRoundTrip).

// decisionReasons maps the reasons a verdict records to their codes.
var decisionReasons = map[string]byte{"policy": 'p', "ceiling": 'c', "consent": 'n'}

// decisionReasonNames is decisionReasons inverted.
var decisionReasonNames = map[byte]string{'p': "policy", 'c': "ceiling", 'n': "consent"}

// plainDecisionString reports whether s can be a string of the compact
// form: printable ASCII that encoding/json writes as it is and that holds
// no separator of the compact form.
func plainDecisionString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e:
			return false
		case c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c == ';' || c == '|' || c == ',':
			return false
		}
	}
	return true
}

// compactDecisions returns the compact form of a policy_decisions value
// (without the mark), or false when v is not in the canonical form.
func compactDecisions(v string) (string, bool) {
	p := decisionParser{s: v}
	var b strings.Builder
	b.Grow(len(v) / 2)
	if !p.lit("[") {
		return "", false
	}
	for first := true; ; first = false {
		if p.lit("]") {
			if first || p.i != len(p.s) {
				return "", false // an empty array is written as it is
			}
			return b.String(), true
		}
		if !first {
			if !p.lit(",") {
				return "", false
			}
			b.WriteByte('|')
		}
		if !p.lit(`{"scope":`) {
			return "", false
		}
		scope, ok := p.str()
		if !ok || !p.lit(`,"allowed":`) {
			return "", false
		}
		switch {
		case p.lit("true"):
			b.WriteByte('a')
		case p.lit("false"):
			b.WriteByte('d')
		default:
			return "", false
		}
		if p.lit(`,"reason":`) {
			r, ok := p.str()
			code, known := decisionReasons[r]
			if !ok || !known {
				return "", false
			}
			b.WriteByte(code)
		}
		b.WriteByte(';')
		b.WriteString(scope)
		b.WriteByte(';')
		if p.lit(`,"policies":`) {
			if !p.list(&b) {
				return "", false
			}
		}
		if p.lit(`,"errors":`) {
			b.WriteByte(';')
			if !p.list(&b) {
				return "", false
			}
		}
		if !p.lit("}") {
			return "", false
		}
	}
}

// decisionParser reads the canonical JSON form, nothing else.
type decisionParser struct {
	s string
	i int
}

func (p *decisionParser) lit(l string) bool {
	if strings.HasPrefix(p.s[p.i:], l) {
		p.i += len(l)
		return true
	}
	return false
}

// str reads a string of plainDecisionString's characters.
func (p *decisionParser) str() (string, bool) {
	if !p.lit(`"`) {
		return "", false
	}
	end := strings.IndexByte(p.s[p.i:], '"')
	if end < 0 {
		return "", false
	}
	s := p.s[p.i : p.i+end]
	if !plainDecisionString(s) {
		return "", false
	}
	p.i += end + 1
	return s, true
}

// list reads a non-empty array of non-empty strings into b, joined by ','.
func (p *decisionParser) list(b *strings.Builder) bool {
	if !p.lit("[") {
		return false
	}
	for first := true; ; first = false {
		if p.lit("]") {
			return !first
		}
		if !first {
			if !p.lit(",") {
				return false
			}
			b.WriteByte(',')
		}
		s, ok := p.str()
		if !ok || s == "" {
			return false
		}
		b.WriteString(s)
	}
}

// expandDecisions returns the JSON text of a compact form (without the
// mark); false when c is not one compactDecisions writes.
func expandDecisions(c string) (string, bool) {
	var b strings.Builder
	b.Grow(len(c)*2 + 64)
	b.WriteByte('[')
	for n, entry := range strings.Split(c, "|") {
		fields := strings.Split(entry, ";")
		if len(fields) != 3 && len(fields) != 4 {
			return "", false
		}
		head := fields[0]
		if len(head) < 1 || len(head) > 2 || (head[0] != 'a' && head[0] != 'd') {
			return "", false
		}
		if n > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"scope":"`)
		if !plainDecisionString(fields[1]) {
			return "", false
		}
		b.WriteString(fields[1])
		if head[0] == 'a' {
			b.WriteString(`","allowed":true`)
		} else {
			b.WriteString(`","allowed":false`)
		}
		if len(head) == 2 {
			r, ok := decisionReasonNames[head[1]]
			if !ok {
				return "", false
			}
			b.WriteString(`,"reason":"`)
			b.WriteString(r)
			b.WriteByte('"')
		}
		list := func(name, joined string) bool {
			b.WriteString(`,"` + name + `":[`)
			for i, s := range strings.Split(joined, ",") {
				if s == "" || !plainDecisionString(s) {
					return false
				}
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteByte('"')
				b.WriteString(s)
				b.WriteByte('"')
			}
			b.WriteByte(']')
			return true
		}
		if fields[2] != "" && !list("policies", fields[2]) {
			return "", false
		}
		if len(fields) == 4 && !list("errors", fields[3]) {
			return "", false
		}
		b.WriteByte('}')
	}
	b.WriteByte(']')
	return b.String(), true
}
