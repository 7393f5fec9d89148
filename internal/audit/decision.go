package audit

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/agentid/agentid/internal/store"
)

// Reason says what settled one scope's decision.
type Reason string

// Reasons.
const (
	// ReasonPolicy: the central policy decided. PolicyIDs are the
	// determining policies: the matching permits of an allowance, the
	// matching forbids of a denial, none for a denial where no permit
	// matched (default deny).
	ReasonPolicy Reason = "policy"
	// ReasonCeiling: the scope is outside the client's ceiling, so policy
	// was not asked.
	ReasonCeiling Reason = "ceiling"
	// ReasonConsent: policy allowed the scope, but the person's consent to
	// it is missing, has expired or was revoked.
	ReasonConsent Reason = "consent"
)

// ScopeDecision is the verdict on one requested scope.
type ScopeDecision struct {
	Scope   string `json:"scope"`
	Allowed bool   `json:"allowed"`
	// Reason is what settled it; events written before reasons were
	// recorded read back as ReasonPolicy.
	Reason    Reason   `json:"reason,omitempty"`
	PolicyIDs []string `json:"policies,omitempty"`
	// Errors are policies that failed to evaluate and were skipped.
	Errors []string `json:"errors,omitempty"`
}

// UnknownVersion is the PolicyVersion of a decision read back from an event
// written before the version was recorded.
const UnknownVersion int64 = -1

// Decision is what a decision event records about how it was decided.
type Decision struct {
	// PolicyVersion is the policy set version that decided; 0 is the
	// built-in default set.
	PolicyVersion int64
	// Scopes are the verdicts in the order the scopes were asked for.
	Scopes []ScopeDecision
}

// Details keys a Decision is stored under.
const (
	DetailPolicyVersion   = "policy_version"
	DetailPolicyDecisions = "policy_decisions"
	// detailScopePrefix starts the per-scope keys of the compact form
	// ("scope.<name>" = "granted:<id>,<id>" or "denied:<id>|ceiling|consent")
	// that token events used before the typed decision; DecisionOf still
	// reads it.
	detailScopePrefix = "scope."
)

// put records d in details: the version, and the scope verdicts as one
// JSON array (field order fixed by the struct, scopes in request order, so
// the stored text is deterministic).
func (d Decision) put(details map[string]string) {
	details[DetailPolicyVersion] = strconv.FormatInt(d.PolicyVersion, 10)
	if len(d.Scopes) == 0 {
		return
	}
	text, ok := encodeScopes(d.Scopes)
	if !ok {
		b, err := json.Marshal(d.Scopes)
		if err != nil {
			// ScopeDecision holds only strings and bools; Marshal cannot fail.
			panic(err)
		}
		text = string(b)
	}
	details[DetailPolicyDecisions] = text
}

// encodeScopes returns the JSON encoding of scopes, byte for byte what
// json.Marshal writes, in one allocation and without reflection: every
// token issuance records a decision. It reports false when a string needs
// escaping (outside printable ASCII, or one of " \ < > &); the caller then
// marshals.
func encodeScopes(scopes []ScopeDecision) (string, bool) {
	size := 2
	for _, sd := range scopes {
		size += 64 + len(sd.Scope) + len(sd.Reason)
		for _, x := range sd.PolicyIDs {
			size += len(x) + 3
		}
		for _, x := range sd.Errors {
			size += len(x) + 3
		}
	}
	var b strings.Builder
	b.Grow(size)
	ok := true
	str := func(s string) {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				ok = false
			}
		}
		b.WriteByte('"')
		b.WriteString(s)
		b.WriteByte('"')
	}
	list := func(key string, xs []string) {
		if len(xs) == 0 {
			return
		}
		b.WriteString(`,"` + key + `":[`)
		for i, x := range xs {
			if i > 0 {
				b.WriteByte(',')
			}
			str(x)
		}
		b.WriteByte(']')
	}
	b.WriteByte('[')
	for i, sd := range scopes {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"scope":`)
		str(sd.Scope)
		b.WriteString(`,"allowed":`)
		b.WriteString(strconv.FormatBool(sd.Allowed))
		if sd.Reason != "" {
			b.WriteString(`,"reason":`)
			str(string(sd.Reason))
		}
		list("policies", sd.PolicyIDs)
		list("errors", sd.Errors)
		b.WriteByte('}')
	}
	b.WriteByte(']')
	return b.String(), ok
}

// DecisionOf reads back the decision an event recorded. ok is false if it
// recorded none. Events written before the typed decision (per-scope
// "scope.<name>" keys, or a decision array without reasons) are read too:
// their scopes are then sorted by name, a missing reason is ReasonPolicy
// and a missing version UnknownVersion.
func DecisionOf(ev *store.AuditEvent) (d Decision, ok bool, err error) {
	return decisionFrom(ev.Details)
}

func decisionFrom(details map[string]string) (d Decision, ok bool, err error) {
	d.PolicyVersion = UnknownVersion
	if v, found := details[DetailPolicyVersion]; found {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return Decision{}, true, fmt.Errorf("audit: detail %s: not a version: %q", DetailPolicyVersion, v)
		}
		d.PolicyVersion, ok = n, true
	}
	if s, found := details[DetailPolicyDecisions]; found {
		if err := json.Unmarshal([]byte(s), &d.Scopes); err != nil {
			return Decision{}, true, fmt.Errorf("audit: detail %s: %w", DetailPolicyDecisions, err)
		}
		for i := range d.Scopes {
			if d.Scopes[i].Reason == "" {
				d.Scopes[i].Reason = ReasonPolicy
			}
		}
		return d, true, nil
	}
	for k, v := range details {
		scope, isScope := strings.CutPrefix(k, detailScopePrefix)
		if !isScope {
			continue
		}
		verdict, ids, _ := strings.Cut(v, ":")
		sd := ScopeDecision{Scope: scope, Reason: ReasonPolicy}
		switch verdict {
		case "granted":
			sd.Allowed = true
		case "denied":
		default:
			return Decision{}, true, fmt.Errorf("audit: detail %s: unknown verdict %q", k, verdict)
		}
		switch {
		case !sd.Allowed && ids == string(ReasonCeiling):
			sd.Reason = ReasonCeiling
		case !sd.Allowed && ids == string(ReasonConsent):
			sd.Reason = ReasonConsent
		case ids != "":
			sd.PolicyIDs = strings.Split(ids, ",")
		}
		d.Scopes = append(d.Scopes, sd)
	}
	slices.SortFunc(d.Scopes, func(a, b ScopeDecision) int { return strings.Compare(a.Scope, b.Scope) })
	return d, ok || len(d.Scopes) > 0, nil
}

// Granted returns the allowed scopes in order.
func (d Decision) Granted() []string {
	var out []string
	for _, s := range d.Scopes {
		if s.Allowed {
			out = append(out, s.Scope)
		}
	}
	return out
}
