package store

import "fmt"

// An event's details are stored with short names for the keys nearly every
// token event carries, and for the frequent values of a few enumerations
// (grant type, client authentication method, client type, registration
// method) (docs/design.md, "Storage per grant"): a client credentials
// token's token.issued event spent about a third of its bytes on key names.
// The short names are a fixed table, version 1 of the stored
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

// detailDecisionsKey is the one coded key whose values have a compact
// form of their own (auditdecisions.go): in rows written from migration
// 0025 on, a value of it that starts with the mark is either that form or
// escaped; rows written before hold its values as they are, and those
// start with '['.
const detailDecisionsKey = "policy_decisions"

// detailKeys is detailCodes inverted.
var detailKeys = invert(detailCodes)

// detailValueCodes maps, for a few keys whose values are an enumeration,
// each frequent value to its stored short name (the same mark; a value of
// these keys that starts with it is escaped as a key is). Values are coded
// only under a coded key, so a row with the schema's key names is never
// read with value codes. Every key here is in detailCodes.
var detailValueCodes = map[string]map[string]string{
	"grant_type": {
		"authorization_code": "~a",
		"client_credentials": "~c",
		"refresh_token":      "~r",
		"urn:ietf:params:oauth:grant-type:token-exchange": "~x",
		"urn:ietf:params:oauth:grant-type:jwt-bearer":     "~j",
	},
	"auth_method": {
		"client_secret_basic": "~b",
		"client_secret_post":  "~p",
		"private_key_jwt":     "~k",
	},
	"client_type":         {"confidential": "~c", "public": "~p"},
	"registration_method": {"manual": "~m", "workload": "~w"},
}

// detailValues is detailValueCodes inverted, per key.
var detailValues = func() map[string]map[string]string {
	m := make(map[string]map[string]string, len(detailValueCodes))
	for k, codes := range detailValueCodes {
		m[k] = invert(codes)
	}
	return m
}()

func invert(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

// marked reports whether s starts with the code mark.
func marked(s string) bool { return s != "" && s[0] == detailCodeMark }

// CompactDetails returns d in its stored form: each key of the short-name
// table replaced by its code (and under it a value of detailValueCodes by
// its own), and a key, or a coded value, that starts with the code mark
// escaped by doubling the mark. It returns d itself when nothing changes,
// and never modifies d; changed reports whether the stored form differs.
func CompactDetails(d map[string]string) (stored map[string]string, changed bool) {
	for k := range d {
		if _, ok := detailCodes[k]; ok || marked(k) {
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
			if vc, ok := detailValueCodes[k][v]; ok {
				v = vc
			} else if k == detailDecisionsKey {
				if cd, ok := compactDecisions(v); ok {
					v = string(detailCodeMark) + cd
				} else if marked(v) {
					v = string(detailCodeMark) + v
				}
			} else if detailValueCodes[k] != nil && marked(v) {
				v = string(detailCodeMark) + v
			}
			k = c
		} else if marked(k) {
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
		if marked(k) {
			coded = true
			break
		}
	}
	if !coded {
		return d, nil
	}
	out := make(map[string]string, len(d))
	for k, v := range d {
		if marked(k) {
			switch key, ok := detailKeys[k]; {
			case ok:
				k = key
				if key == detailDecisionsKey && marked(v) {
					if marked(v[1:]) {
						v = v[1:]
					} else if d, ok := expandDecisions(v[1:]); ok {
						v = d
					} else {
						return nil, fmt.Errorf("stored details value of %s is no compact form of policy decisions", key)
					}
				} else if values := detailValues[key]; values != nil && marked(v) {
					if value, ok := values[v]; ok {
						v = value
					} else if marked(v[1:]) {
						v = v[1:]
					} else {
						return nil, fmt.Errorf("stored details value %q of %s is no known short name", v, key)
					}
				}
			case marked(k[1:]):
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
