package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// envPrefix starts every environment override. The rule: AGENTID_ followed
// by the setting's YAML path, dots replaced by underscores, upper-cased
// (tokens.access_token_ttl → AGENTID_TOKENS_ACCESS_TOKEN_TTL). Deriving the
// names from the schema means a new setting cannot lack an override.
const envPrefix = "AGENTID_"

// envAliases are extra names for an override, kept because docs/design.md names
// them. Setting both an alias and the derived name is a problem.
var envAliases = map[string]string{
	"kek.value": "AGENTID_KEK",
}

// setting is one leaf of the schema.
type setting struct {
	path  string // dotted YAML path, "tokens.access_token_ttl"
	env   string // AGENTID_TOKENS_ACCESS_TOKEN_TTL
	index []int  // reflect field index path from Config
	typ   reflect.Type
}

var durationType = reflect.TypeFor[Duration]()

// settings lists every leaf setting of Config in declaration order.
func settings() []setting {
	var out []setting
	walkSchema(reflect.TypeFor[Config](), nil, nil, &out)
	return out
}

func walkSchema(t reflect.Type, path []string, index []int, out *[]setting) {
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		if f.Type.Kind() == reflect.Slice {
			// Lists (trusted_issuers) are set in the file only: an
			// environment variable cannot spell them.
			continue
		}
		p := append(append([]string(nil), path...), name)
		idx := append(append([]int(nil), index...), i)
		if isSection(f.Type) {
			walkSchema(f.Type, p, idx, out)
			continue
		}
		*out = append(*out, setting{
			path:  strings.Join(p, "."),
			env:   envPrefix + strings.ToUpper(strings.Join(p, "_")),
			index: idx,
			typ:   f.Type,
		})
	}
}

// yamlName is the key of a field in the file, or "" when the field is not
// part of the file (no tag, or "-").
func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// isSection reports whether a field type is a nested mapping rather than a
// single value.
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t != durationType
}

// sectionField finds the field of struct type t whose YAML key is key.
func sectionField(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if n := yamlName(f); n != "" && n == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// suggestKey returns the known key of section type t that key probably
// meant, or "". Case and '-' for '_' do not count as differences; beyond
// that the closest key by edit distance wins when it is within a third of
// its length (at least one edit), so "acess_token_ttl" suggests
// "access_token_ttl" while an unrelated key suggests nothing. A tie
// suggests nothing rather than a guess.
func suggestKey(t reflect.Type, key string) string {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	k := norm(key)
	best, bestDist, tie := "", -1, false
	for i := range t.NumField() {
		n := yamlName(t.Field(i))
		if n == "" {
			continue
		}
		d := editDistance(k, norm(n))
		if d > max(1, len(n)/3) {
			continue
		}
		switch {
		case bestDist < 0 || d < bestDist:
			best, bestDist, tie = n, d, false
		case d == bestDist:
			tie = true
		}
	}
	if tie {
		return ""
	}
	return best
}

// editDistance is the optimal-string-alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent
// bytes each cost one. Keys are short ASCII, so bytes are characters.
func editDistance(a, b string) int {
	// prev2, prev and cur are rows i-2, i-1 and i of the DP table.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// setLeaf parses text into the leaf value v. It is shared by the YAML
// decoder and the environment overrides so both accept exactly the same
// spellings. Errors never repeat the text of a string setting (it may be
// a secret); they do quote rejected booleans, numbers and durations.
func setLeaf(v reflect.Value, text string) error {
	switch p := v.Addr().Interface().(type) {
	case *string:
		*p = text
	case *bool:
		// Only the YAML 1.2 core spellings; "yes"/"on" are ambiguous.
		switch text {
		case "true":
			*p = true
		case "false":
			*p = false
		default:
			return fmt.Errorf("invalid boolean %q (want true or false)", text)
		}
	case *int:
		n, err := strconv.Atoi(text)
		if err != nil {
			return fmt.Errorf("invalid integer %q", text)
		}
		*p = n
	case *Duration:
		return p.UnmarshalText([]byte(text))
	case *float64:
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("invalid number %q", text)
		}
		*p = f
	default:
		// Unreachable while TestSettingsKinds passes.
		return fmt.Errorf("unsupported setting type %s", v.Type())
	}
	return nil
}
