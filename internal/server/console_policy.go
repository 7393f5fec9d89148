package server

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/store"
)

// policyVersion is a policy set version as the console lists it; version
// 0 is the built-in default, active while no set was ever applied.
type policyVersion struct {
	*store.PolicySet
	Label string
}

// policyVersions lists the tenant's policy versions, newest first, the
// built-in default last, and the active one.
func (s *Server) policyVersions(ctx context.Context) (all []policyVersion, active policyVersion, err error) {
	sets, err := s.st.ListPolicySets(ctx, s.tenant)
	if err != nil {
		return nil, active, err
	}
	builtin := policyVersion{PolicySet: &store.PolicySet{Version: 0, Files: policy.DefaultFiles(), Comment: "built into agentid", Active: true}, Label: "0 (built-in default)"}
	for _, ps := range sets {
		v := policyVersion{PolicySet: ps, Label: strconv.FormatInt(ps.Version, 10)}
		if ps.Active {
			active, builtin.Active = v, false
		}
		all = append(all, v)
	}
	if builtin.Active {
		active = builtin
	}
	return append(all, builtin), active, nil
}

// policyView is the policy page: the active version, every version, and
// the forms that compare two and explain a decision.
type policyView struct {
	consoleBase
	Active    policyVersion
	Versions  []policyVersion
	From, To  int64
	Resources []*store.Resource
	// Explain holds the explain form's values as typed.
	Explain    map[string]string
	GrantTypes []string
}

// explainGrantTypes are the grant types the explain form offers ("" is
// the default: authorization_code with a user, client_credentials
// without).
var explainGrantTypes = []string{"", "authorization_code", "client_credentials", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange", "urn:ietf:params:oauth:grant-type:jwt-bearer"}

func (s *Server) policyPage(w http.ResponseWriter, r *http.Request, title string) (*policyView, bool) {
	admin := s.consoleUser(w, r)
	if admin == nil {
		return nil, false
	}
	ctx := r.Context()
	all, active, err := s.policyVersions(ctx)
	if err != nil {
		s.internalErrorPage(w, r, err)
		return nil, false
	}
	res, err := s.st.ListResources(ctx, s.tenant)
	if err != nil {
		s.internalErrorPage(w, r, err)
		return nil, false
	}
	v := &policyView{consoleBase: s.consoleBase(w, r, admin, "policy", title), Active: active, Versions: all, To: active.Version,
		Resources: res, Explain: map[string]string{}, GrantTypes: explainGrantTypes}
	// Compare the active version with the one before it by default.
	if i := slices.IndexFunc(all, func(p policyVersion) bool { return p.Version == active.Version }); i+1 < len(all) {
		v.From = all[i+1].Version
	}
	q := r.URL.Query()
	for _, k := range []string{"agent", "user", "resource", "scope", "grant_type"} {
		v.Explain[k] = strings.TrimSpace(q.Get(k))
	}
	return v, true
}

func (s *Server) handleConsolePolicy(w http.ResponseWriter, r *http.Request) {
	v, ok := s.policyPage(w, r, "Policy")
	if !ok {
		return
	}
	render(w, s.console.policy, http.StatusOK, v)
}

// fileDiff is one policy file compared between two versions.
type fileDiff struct {
	Name   string
	Status string // added, removed, changed, unchanged
	Hunks  []diffHunk
}

type diffView struct {
	*policyView
	FromV, ToV policyVersion
	Files      []fileDiff
	Same       bool
}

// handleConsoleDiff compares the files of two policy versions (from, to)
// line by line.
func (s *Server) handleConsoleDiff(w http.ResponseWriter, r *http.Request) {
	pv, ok := s.policyPage(w, r, "Policy diff")
	if !ok {
		return
	}
	find := func(param string) (policyVersion, bool) {
		n, err := strconv.ParseInt(r.URL.Query().Get(param), 10, 64)
		if err != nil {
			return policyVersion{}, false
		}
		i := slices.IndexFunc(pv.Versions, func(p policyVersion) bool { return p.Version == n })
		if i < 0 {
			return policyVersion{}, false
		}
		return pv.Versions[i], true
	}
	from, ok1 := find("from")
	to, ok2 := find("to")
	if !ok1 || !ok2 {
		pv.Error = "Choose two versions of the list to compare."
		render(w, s.console.policy, http.StatusBadRequest, pv)
		return
	}
	pv.From, pv.To = from.Version, to.Version
	v := diffView{policyView: pv, FromV: from, ToV: to, Same: true}
	names := map[string]bool{}
	for n := range maps.Keys(from.Files) {
		names[n] = true
	}
	for n := range maps.Keys(to.Files) {
		names[n] = true
	}
	for _, n := range slices.Sorted(maps.Keys(names)) {
		a, inA := from.Files[n]
		b, inB := to.Files[n]
		fd := fileDiff{Name: n, Status: "changed"}
		switch {
		case !inA:
			fd.Status = "added"
		case !inB:
			fd.Status = "removed"
		case a == b:
			fd.Status = "unchanged"
		}
		if fd.Status != "unchanged" {
			v.Same = false
			fd.Hunks = hunks(diffLines(splitLines(a), splitLines(b)))
		}
		v.Files = append(v.Files, fd)
	}
	render(w, s.console.diff, http.StatusOK, v)
}

type explainView struct {
	*policyView
	X *policy.Explanation
}

// handleConsoleExplain explains how the active policy set decides a
// request, as `agentid policy explain` does, from the agent, person and
// resource as they are now.
func (s *Server) handleConsoleExplain(w http.ResponseWriter, r *http.Request) {
	pv, ok := s.policyPage(w, r, "Explain a decision")
	if !ok {
		return
	}
	e := pv.Explain
	if e["agent"] == "" || e["resource"] == "" {
		pv.Error = "Name an agent and a resource to explain a decision."
		render(w, s.console.policy, http.StatusBadRequest, pv)
		return
	}
	if !slices.Contains(explainGrantTypes, e["grant_type"]) {
		pv.Error = "Choose a grant type of the list."
		render(w, s.console.policy, http.StatusBadRequest, pv)
		return
	}
	i := slices.IndexFunc(pv.Resources, func(res *store.Resource) bool { return res.URI == e["resource"] })
	if i < 0 {
		pv.Error = "There is no resource " + e["resource"] + "."
		render(w, s.console.policy, http.StatusBadRequest, pv)
		return
	}
	for _, sc := range strings.Fields(e["scope"]) {
		if !slices.ContainsFunc(pv.Resources[i].Scopes, func(o store.Scope) bool { return o.Name == sc }) {
			pv.Error = "The resource " + e["resource"] + " does not offer the scope " + sc + "."
			render(w, s.console.policy, http.StatusBadRequest, pv)
			return
		}
	}
	x, err := s.policy.ExplainQuery(r.Context(), policy.Query{
		AgentID: e["agent"], User: e["user"], Resource: e["resource"], Scopes: strings.Fields(e["scope"]), GrantType: e["grant_type"],
	})
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.internalErrorPage(w, r, err)
			return
		}
		pv.Error = explainProblem(err)
		render(w, s.console.policy, http.StatusBadRequest, pv)
		return
	}
	render(w, s.console.explain, http.StatusOK, explainView{policyView: pv, X: x})
}

// explainProblem says which agent or person of an explain query does
// not exist (ExplainQuery's error names it: `policy: agent "x": …`).
func explainProblem(err error) string {
	msg := strings.TrimPrefix(err.Error(), "policy: ")
	if i := strings.Index(msg, ": "); i >= 0 {
		msg = msg[:i]
	}
	return "There is no " + msg + "."
}
