package store

import (
	"fmt"
	"strings"
)

// An event's details are stored with short names for the keys nearly every
// token event carries (docs/design.md, "Storage per grant"): a client
// credentials token's token.issued event spent about a third of its bytes
// on key names. The short names are a fixed table, version 1 of the stored
// form; a backend stores CompactDetails(ev.StoredDetails()) and expands
// what it reads with ExpandDetails, so every reader (the audit API, sinks,
// the chain's canonical encoding, verify) sees the keys of the schema, and
// an event hashes the same whichever form its row has. Rows written before
// (full key names) read back unchanged: no stored key of the schema starts
// with detailCodeMark, and a key that does is escaped.
//
// Never change or reuse a code: stored rows keep them for good. Keys a
// query or index reads from the stored JSON (provider, agent,
// reporting_client, report_id; migrations 0013 and 0015) keep their names.

// detailCodeMark starts every short name.
const detailCodeMark = '~'

// detailCodes maps a details key to its stored short name.
var detailCodes = map[string]string{
	"auth_method":         "~a",
	"auth_age_seconds":    "~b",
	"client_type":         "~c",
	"policy_decisions":    "~d",
	"expires_at":          "~e",
	"grant_type":          "~g",
	"grant_id":            "~i",
	"jti":                 "~j",
	"duration":            "~n",
	"client_request_id":   "~q",
	"registration_method": "~r",
	"subject_jti":         "~s",
	"token_type":          "~t",
	"user_agent":          "~u",
	"policy_version":      "~v",
	"act_chain":           "~x",
}

// detailKeys is detailCodes inverted.
var detailKeys = func() map[string]string {
	m := make(map[string]string, len(detailCodes))
	for k, c := range detailCodes {
		m[c] = k
	}
	return m
}()

// CompactDetails returns d in its stored form: each key of the short-name
// table replaced by its code, and a key that starts with the code mark
// escaped by doubling the mark. It returns d itself when no key changes,
// and never modifies d; changed reports whether the stored form differs.
func CompactDetails(d map[string]string) (stored map[string]string, changed bool) {
	for k := range d {
		if _, ok := detailCodes[k]; ok || (k != "" && k[0] == detailCodeMark) {
			changed = true
			break
		}
	}
	if !changed {
		return d, false
	}
	stored = make(map[string]string, len(d))
	for k, v := range d {
		if c, ok := detailCodes[k]; ok {
			k = c
		} else if k != "" && k[0] == detailCodeMark {
			k = string(detailCodeMark) + k
		}
		stored[k] = v
	}
	return stored, true
}

// ExpandDetails returns the details d read from a row in their schema
// form: CompactDetails reversed. It returns d itself when no key is a code
// (every row written before the short names, and events without the
// frequent keys); a code it does not know is an error (a damaged row, or
// one written by a newer version).
func ExpandDetails(d map[string]string) (map[string]string, error) {
	coded := false
	for k := range d {
		if k != "" && k[0] == detailCodeMark {
			coded = true
			break
		}
	}
	if !coded {
		return d, nil
	}
	out := make(map[string]string, len(d))
	for k, v := range d {
		if k != "" && k[0] == detailCodeMark {
			switch key, ok := detailKeys[k]; {
			case ok:
				k = key
			case strings.HasPrefix(k[1:], string(detailCodeMark)):
				k = k[1:]
			default:
				return nil, fmt.Errorf("stored details key %q is no known short name", k)
			}
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("stored details hold %q twice", k)
		}
		out[k] = v
	}
	return out, nil
}
