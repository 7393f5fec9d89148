package server

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/store"
)

// refusal is a requested scope the hub will not grant, said in plain words
// for the person and, for an administrator, with the command that would
// change it.
type refusal struct {
	Name        string
	Description string
	// Reason completes "not available because …"; Sentence is it as a
	// sentence of its own, for pages.
	Reason, Sentence string
	Command          string
}

// policyReasons says, for the policies of the default set that refuse
// scopes to an authorization, why in plain words. %s is what the scope
// lets an application do ("delete your notes").
var policyReasons = map[string]string{
	"self-registered-sensitive-requires-trusted": "this application registered itself; an administrator must mark it trusted before it can %s",
	"user-tenant-only":                           "it belongs to another organisation than your account",
	"blocked-domain":                             "an administrator blocked applications from this domain",
}

// refusals explains the scopes the hub will not grant: those decided in d
// that are not in granted. A scope above the client's ceiling is explained
// by the register decision that keeps it out of the ceiling.
func (s *Server) refusals(ctx context.Context, a *authz, u *store.User, granted []string, d audit.Decision) ([]refusal, error) {
	var out []refusal
	var aboveCeiling []string
	ids := map[string][]string{}
	for _, v := range d.Scopes {
		if slices.Contains(granted, v.Scope) {
			continue
		}
		if v.Reason == audit.ReasonCeiling {
			aboveCeiling = append(aboveCeiling, v.Scope)
		} else {
			ids[v.Scope] = v.PolicyIDs
		}
		out = append(out, refusal{Name: v.Scope})
	}
	registered := map[string]bool{}
	if len(aboveCeiling) > 0 {
		probe := *a.client
		probe.RequestedScopes = aboveCeiling
		cl, err := s.policy.Ceiling(ctx, &probe, []*store.Resource{a.resource}, policy.Context{})
		if err != nil {
			return nil, err
		}
		for _, name := range aboveCeiling {
			registered[name] = true
		}
		for _, d := range cl.Denied {
			ids[d.Scope], registered[d.Scope] = d.PolicyIDs, false
		}
	}
	for i := range out {
		r := &out[i]
		r.Description = scopeDescription(a.resource, r.Name)
		switch {
		case registered[r.Name]:
			// Policy would let it register the scope, but its ceiling
			// (the scopes it asked for at registration) leaves it out.
			r.Reason = "this application did not register for it; it must register again, asking for it"
		default:
			r.Reason, r.Command = reasonFor(ids[r.Name], a, u, r)
		}
		first, n := utf8.DecodeRuneInString(r.Reason)
		r.Sentence = string(unicode.ToUpper(first)) + r.Reason[n:] + "."
	}
	return out, nil
}

// reasonFor turns the deciding policies of a refusal into a sentence and,
// where one command changes the outcome, that command.
func reasonFor(policyIDs []string, a *authz, u *store.User, r *refusal) (reason, command string) {
	for _, id := range policyIDs {
		if tmpl, ok := policyReasons[id]; ok {
			reason = tmpl
			if strings.Contains(tmpl, "%s") {
				reason = strings.Replace(tmpl, "%s", lowerFirst(r.Description), 1)
			}
			switch {
			case id == "self-registered-sensitive-requires-trusted" && a.client.RegistrationMethod == store.RegistrationCIMD:
				// A metadata-document client is trusted by its domain.
				command = "agentid domains add " + cliArg(cimdHost(a.client)) + " --trust trusted"
			case id == "self-registered-sensitive-requires-trusted":
				command = "agentid clients tag " + cliArg(a.client.ID) + " trusted"
			}
			return reason, command
		}
	}
	if len(policyIDs) == 0 {
		reason = "no policy of your organisation allows it"
	} else {
		reason = "your organisation's policy does not allow it"
	}
	// Not one known command: the explanation names the deciding policies.
	command = "agentid policy explain --agent=" + shellQuote(a.client.ID) + " --user=" + shellQuote(u.Username) +
		" --resource=" + shellQuote(a.resource.URI) + " --scope=" + shellQuote(r.Name)
	return reason, command
}

// scopeDescription is what a scope lets an application do, for sentences:
// its description, or "use <name>".
func scopeDescription(res *store.Resource, name string) string {
	i := slices.IndexFunc(res.Scopes, func(sc store.Scope) bool { return sc.Name == name })
	if i >= 0 && res.Scopes[i].Description != "" {
		return res.Scopes[i].Description
	}
	return "use " + name
}

func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToLower(r)) + s[n:]
}

// cliArg is a positional argument of a command shown to an administrator:
// shell-quoted, and after "--" when it starts with "-", so that it cannot
// read as a flag.
func cliArg(v string) string {
	if strings.HasPrefix(v, "-") {
		return "-- " + shellQuote(v)
	}
	return shellQuote(v)
}

// shellQuote quotes v for a POSIX shell when it needs it.
func shellQuote(v string) string {
	if v != "" && !strings.ContainsFunc(v, func(r rune) bool {
		return !(r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-_./:@%+=,", r)))
	}) {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// refusedError is the invalid_scope error a client gets back when nothing
// it asked for is left to approve (RFC 6749 §4.1.2.1), naming the scopes
// the hub refuses and why.
func refusedError(refused []refusal) *oauth.Error {
	parts := make([]string, len(refused))
	for i, r := range refused {
		parts[i] = r.Name + " (" + r.Reason + ")"
	}
	return oauth.ErrInvalidScope("the hub will not grant %s", truncate(strings.Join(parts, "; "), 400))
}

// refusedView is the page shown when everything else asked for is already
// granted but some of it will not be: nothing to approve, and a way back.
type refusedView struct {
	consentView
	BackURL string
}

func (s *Server) renderRefused(w http.ResponseWriter, v consentView, a *authz, refused []refusal) {
	v.Title = "Not available"
	back := oauth.ErrorRedirect(a.redirectURI, refusedError(refused), a.req.State, s.issuer)
	render(w, s.pages.refused, http.StatusOK, refusedView{consentView: v, BackURL: back})
}
