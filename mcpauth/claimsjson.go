package mcpauth

import (
	"encoding/json"
	"unicode/utf8"
)

// decodeClaimsMap decodes payload, a JSON object, into the map that
// parseClaimsReference's encoding/json decoder (with UseNumber) makes of
// it: objects as map[string]any, arrays as []any (never nil), numbers as
// json.Number with their text, strings unescaped with invalid UTF-8
// replaced (by encoding/json itself, for the few strings that need it),
// the last of duplicate names winning. It scans the payload once and takes
// every plain string as a substring of one copy of it, where
// encoding/json scans twice through a general reflection-driven decoder.
//
// ok is false for what it does not handle alike: a payload that is not
// one object with nothing but whitespace after it, invalid JSON, nesting
// deeper than maxClaimsDepth. parseClaims then asks the reference decoder,
// whose answer stands. FuzzDecodeClaimsMap holds the two decoders to the
// same map for every payload this one accepts.
func decodeClaimsMap(payload []byte) (m map[string]any, ok bool) {
	d := claimsDecoder{s: string(payload)}
	d.skipSpace()
	if d.i == len(d.s) || d.s[d.i] != '{' {
		return nil, false
	}
	m, ok = d.object(0)
	if !ok {
		return nil, false
	}
	d.skipSpace()
	return m, d.i == len(d.s)
}

// maxClaimsDepth bounds the nesting decodeClaimsMap follows (act chains
// nest one object per actor, maxActors at most).
const maxClaimsDepth = maxActors + 8

type claimsDecoder struct {
	s string
	i int
}

func (d *claimsDecoder) skipSpace() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// object decodes the object starting at d.i ('{').
func (d *claimsDecoder) object(depth int) (map[string]any, bool) {
	if depth >= maxClaimsDepth {
		return nil, false
	}
	d.i++ // '{'
	m := make(map[string]any)
	d.skipSpace()
	if d.i < len(d.s) && d.s[d.i] == '}' {
		d.i++
		return m, true
	}
	for {
		if d.i == len(d.s) || d.s[d.i] != '"' {
			return nil, false
		}
		name, ok := d.str()
		if !ok {
			return nil, false
		}
		d.skipSpace()
		if d.i == len(d.s) || d.s[d.i] != ':' {
			return nil, false
		}
		d.i++
		d.skipSpace()
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		m[name] = v
		d.skipSpace()
		if d.i == len(d.s) {
			return nil, false
		}
		switch d.s[d.i] {
		case ',':
			d.i++
			d.skipSpace()
		case '}':
			d.i++
			return m, true
		default:
			return nil, false
		}
	}
}

// array decodes the array starting at d.i ('[').
func (d *claimsDecoder) array(depth int) ([]any, bool) {
	if depth >= maxClaimsDepth {
		return nil, false
	}
	d.i++ // '['
	a := make([]any, 0)
	d.skipSpace()
	if d.i < len(d.s) && d.s[d.i] == ']' {
		d.i++
		return a, true
	}
	for {
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		a = append(a, v)
		d.skipSpace()
		if d.i == len(d.s) {
			return nil, false
		}
		switch d.s[d.i] {
		case ',':
			d.i++
			d.skipSpace()
		case ']':
			d.i++
			return a, true
		default:
			return nil, false
		}
	}
}

// value decodes the value starting at d.i, inside depth containers.
func (d *claimsDecoder) value(depth int) (any, bool) {
	if d.i == len(d.s) {
		return nil, false
	}
	switch c := d.s[d.i]; {
	case c == '"':
		return d.str()
	case c == '{':
		return d.object(depth + 1)
	case c == '[':
		return d.array(depth + 1)
	case c == '-' || '0' <= c && c <= '9':
		return d.number()
	case d.literal("true"):
		return true, true
	case d.literal("false"):
		return false, true
	case d.literal("null"):
		return nil, true
	}
	return nil, false
}

func (d *claimsDecoder) literal(word string) bool {
	if len(d.s)-d.i >= len(word) && d.s[d.i:d.i+len(word)] == word {
		d.i += len(word)
		return true
	}
	return false
}

// str decodes the string starting at d.i ('"'). A string without escapes
// and of valid UTF-8 is its own text; any other goes through
// encoding/json, for exactly its unescaping and replacement of invalid
// UTF-8.
func (d *claimsDecoder) str() (string, bool) {
	start := d.i
	d.i++
	plain := true
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			text := d.s[start+1 : d.i-1]
			if plain && utf8.ValidString(text) {
				return text, true
			}
			var s string
			if json.Unmarshal([]byte(d.s[start:d.i]), &s) != nil {
				return "", false
			}
			return s, true
		case c < 0x20:
			return "", false // RFC 8259 §7: control characters must be escaped
		case c == '\\':
			plain = false
			d.i += 2 // the escaped character, never the closing quote
			continue
		}
		d.i++
	}
	return "", false
}

// number decodes the number starting at d.i (RFC 8259 §6) as its text.
func (d *claimsDecoder) number() (json.Number, bool) {
	start := d.i
	if d.s[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.s) && d.s[d.i] == '0':
		d.i++
	case d.digits() == 0:
		return "", false
	}
	if d.i < len(d.s) && d.s[d.i] == '.' {
		d.i++
		if d.digits() == 0 {
			return "", false
		}
	}
	if d.i < len(d.s) && (d.s[d.i] == 'e' || d.s[d.i] == 'E') {
		d.i++
		if d.i < len(d.s) && (d.s[d.i] == '+' || d.s[d.i] == '-') {
			d.i++
		}
		if d.digits() == 0 {
			return "", false
		}
	}
	return json.Number(d.s[start:d.i]), true
}

func (d *claimsDecoder) digits() int {
	n := 0
	for d.i < len(d.s) && '0' <= d.s[d.i] && d.s[d.i] <= '9' {
		d.i++
		n++
	}
	return n
}
