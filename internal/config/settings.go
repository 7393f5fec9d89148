package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// envPrefix starts every environment override. The rule: AGENTID_ followed
// by the setting's YAML path, dots replaced by underscores, upper-cased
// (tokens.access_token_ttl → AGENTID_TOKENS_ACCESS_TOKEN_TTL). Deriving the
// names from the schema means a new setting cannot lack an override.
const envPrefix = "AGENTID_"

// envAliases are extra names for an override, kept because DESIGN.md names
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

// suggestKey returns the known key of t that key probably meant (case or
// dash/underscore confusion), or "".
func suggestKey(t reflect.Type, key string) string {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	for i := range t.NumField() {
		if n := yamlName(t.Field(i)); n != "" && norm(n) == norm(key) {
			return n
		}
	}
	return ""
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
	default:
		// Unreachable while TestSettingsKinds passes.
		return fmt.Errorf("unsupported setting type %s", v.Type())
	}
	return nil
}
