package audit_test

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/printer"
	"go/token"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

var update = flag.Bool("update", false, "rewrite docs/audit-events.md from the code")

const docPath = "../../docs/audit-events.md"

// TestAuditEventsDoc generates docs/audit-events.md from the code — the
// constructors (their doc comments and signatures, read from the source),
// what Check requires of each type, what the constructors write (every
// sample's columns and details keys), the details dictionary and the OCSF
// rules — and fails when the file differs. Run with -update to rewrite it.
func TestAuditEventsDoc(t *testing.T) {
	got := generateDoc(t)
	if *update {
		if err := os.WriteFile(docPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/audit -run TestAuditEventsDoc -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("docs/audit-events.md is stale: run go test ./internal/audit -run TestAuditEventsDoc -update\n%s", firstDiff(want, got))
	}
}

// TestDetailsDictionary: every details key a constructor writes is
// explained, and every explained key is written by some constructor.
func TestDetailsDictionary(t *testing.T) {
	docs := audit.DetailDocs()
	written := map[string]bool{}
	for name, ev := range docSamples() {
		for k := range ev.StoredDetails() {
			written[k] = true
			if docs[k] == "" {
				t.Errorf("%s writes details key %q, which audit's detailDocs does not explain", name, k)
			}
		}
	}
	for k := range docs {
		if !written[k] {
			t.Errorf("detailDocs explains %q, which no sample writes (stale, or add a sample)", k)
		}
	}
}

// docSamples are constructors() and ocsfSamples() with more variants, so
// that each type's optional fields show up.
func docSamples() map[string]*store.AuditEvent {
	out := ocsfSamples()
	delete(out, "foreign type")
	m := meta
	m.ClientRequestID = "trace-1"
	iss := testIssuer()
	iss.JWKS, iss.JWKSURI = "", "https://idp.example/jwks"
	more := map[string]*store.AuditEvent{
		"client.registered held": audit.NewClientRegistered(m, audit.ClientRegisteredFields{ClientID: "c", Method: store.RegistrationDCR, AuthMethod: "none", Status: store.ClientPending,
			HoldPolicies: []string{"hold"}, SoftwareIssuer: "https://sw.example", Policy: dec}),
		"client.updated everything": audit.NewClientUpdated(meta, audit.ClientUpdatedFields{ClientID: "c", Change: audit.ChangeDocument, Method: store.RegistrationCIMD,
			Ceiling: []string{"a"}, CeilingRemoved: []string{"b"}, TagsRemoved: []string{"t"}, Reason: "policy", Fields: []string{"client_name"}, Policy: &dec}),
		"token.issued delegated": audit.NewTokenIssued(meta, audit.TokenIssuedFields{ClientID: "c", UserID: "u", Resource: key.Resource, Scopes: []string{"s"},
			GrantType: "urn:ietf:params:oauth:grant-type:token-exchange", JTI: "j2", Policy: dec, AuthMethod: "private_key_jwt", AuthAge: time.Minute,
			Chain: []string{"b", "a"}, SubjectJTI: "j1"}),
		"token.denied delegated":      audit.NewTokenDenied(meta, audit.TokenDeniedFields{ClientID: "c", Resource: key.Resource, Scopes: []string{"s"}, GrantType: "x", Policy: dec, Chain: []string{"b"}}),
		"consent.revoked whole agent": audit.NewConsentRevoked(meta, audit.ConsentRevokedFields{ConsentKey: audit.ConsentKey{ClientID: "c", UserID: "u"}, Scopes: []string{"s"}, WholeAgent: true}),
		"consent.expired with grant":  audit.NewConsentExpired(meta, audit.ConsentExpiredFields{ConsentKey: key, Scopes: []string{"s"}, GrantID: "g"}),
		"token.revoked refresh":       audit.NewTokenRevoked(meta, audit.TokenRevokedFields{ClientID: "c", UserID: "u", Resource: key.Resource, TokenType: audit.TokenTypeRefresh, GrantID: "g"}),
		"policy.applied rollback":     audit.NewPolicyApplied(meta, audit.PolicyAppliedFields{Operation: audit.PolicyOpRollback, Version: 3, Files: []string{"a.cedar"}, Policies: 1, SHA256: "ab", Comment: "back"}),
		"domain.updated text/plain":   audit.NewDomainUpdated(meta, audit.DomainFields{Pattern: "*.example.com", Trust: store.DomainAllowed, AllowTextPlain: true}),
		"issuer.updated settings":     audit.NewIssuerUpdated(meta, iss, audit.IssuerChangeSettings),
		"connection.retrieved delegated": audit.NewConnectionRetrieved(meta, audit.RetrievalFields{ClientID: "mcp", Resource: key.Resource, UserID: "u", Agent: "c",
			ActChain: "mcp c", SubjectJTI: "j", ProviderID: "calendar", ConnectionID: "conn_1", Scopes: []string{"s"}, PolicyVersion: "4"}),
		"kek.rewrapped providers":      audit.NewKEKRewrapped(meta, audit.KEKRewrappedFields{KEKID: "k", Providers: 2}),
		"user.updated attributes":      audit.NewUserAccessUpdated(meta, "u", audit.ChangeAttributes, []string{"department"}, []string{"employment"}),
		"resource.updated user claims": audit.NewResourceUserClaimsUpdated(meta, key.Resource, []string{"s"}, []string{"groups=groups", "-department"}),
		"audit.verified broken":        audit.NewVerified(meta, &audit.Report{Events: 5, Unsealed: 1, Break: &audit.Break{EventID: 3, Reason: "hash mismatch"}}),
	}
	maps.Copy(out, more)
	return out
}

// constructorInfo is what the source says of one constructor.
type constructorInfo struct {
	name, signature, doc string
}

// constructorsByType reads the package source: each exported New…
// function returning *store.AuditEvent, keyed by the event types whose
// constants its body names.
func constructorsByType(t *testing.T) map[string][]constructorInfo {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, e := range entries {
		n := e.Name()
		if !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	types := map[string]bool{}
	for _, typ := range audit.Types() {
		types[typ] = true
	}
	// The type constants: string constants whose value is an event type.
	consts := map[string]string{}
	for _, f := range files {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						if v, err := strconv.Unquote(lit.Value); err == nil && types[v] {
							consts[n.Name] = v
						}
					}
				}
			}
		}
	}
	pkg, err := doc.NewFromFiles(fset, files, "github.com/agentid/agentid/internal/audit", doc.PreserveAST)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]constructorInfo{}
	for _, fn := range pkg.Funcs {
		d := fn.Decl
		if !strings.HasPrefix(fn.Name, "New") || d.Type.Results == nil || len(d.Type.Results.List) != 1 ||
			exprString(fset, d.Type.Results.List[0].Type) != "*store.AuditEvent" {
			continue
		}
		info := constructorInfo{name: fn.Name, signature: fn.Name + strings.TrimPrefix(exprString(fset, d.Type), "func"), doc: strings.Join(strings.Fields(fn.Doc), " ")}
		seen := map[string]bool{}
		ast.Inspect(d.Body, func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok {
				if typ, ok := consts[id.Name]; ok && !seen[typ] {
					seen[typ] = true
					out[typ] = append(out[typ], info)
				}
			}
			return true
		})
	}
	return out
}

func exprString(fset *token.FileSet, n any) string {
	var b bytes.Buffer
	if err := printer.Fprint(&b, fset, n); err != nil {
		panic(err)
	}
	return b.String()
}

func generateDoc(t *testing.T) []byte {
	t.Helper()
	ctors := constructorsByType(t)
	samples := docSamples()
	byType := map[string][]*store.AuditEvent{}
	for _, name := range slices.Sorted(maps.Keys(samples)) {
		ev := samples[name]
		byType[ev.Type] = append(byType[ev.Type], ev)
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Audit events\n\n")
	w("<!-- Generated from internal/audit by `go test ./internal/audit -run TestAuditEventsDoc -update`. Do not edit: a test fails when this file and the code differ. -->\n\n")
	w("agentid records every lifecycle change of agents, people, consents, tokens and the hub's own configuration as an audit event, written in the same transaction as the change. ")
	w("Each event type has one typed constructor in `internal/audit`, which fills what the type must carry; this page is generated from those constructors, from what `audit.Check` requires of each type and from the OCSF mapping. ")
	w("Read the trail with `agentid audit list`, follow it with `agentid audit tail -f`, export it with `agentid audit export --format ndjson|ocsf`, or query `GET /admin/api/audit` (docs/design.md, \"Audit queries\").\n\n")
	w("No event carries a token, authorization code, client secret, assertion, password or key: tokens appear by `jti`, a grant by its id, a key set by its digest. `TestConstructorsCarryNoSecret` feeds every constructor random high-entropy values and checks that each one found in the event came from an input that names something (an id, a `jti`), never from one that is a credential.\n\n")
	w("## Every event\n\n| column | holds |\n|---|---|\n")
	for _, c := range audit.Columns() {
		w("| `%s` | %s |\n", c[0], c[1])
	}
	w("\nAny event may also carry the details `client_request_id` and `user_agent` (from the request), `registration_method`, `client_type` and `cimd_host` (of the agent in `client_id`, wherever the hub had its record), `actor` and `os_user` (an admin command), `actor_id` (an administrator in the console or an admin API client); the lists below leave them out.\n")
	w("\nIn JSON (`agentid audit list --json`, `export --format ndjson`, the admin API) an event is an object with these names; empty columns are left out, `details` is an object of strings.\n\n")

	w("## Event types\n\n| type | outcome | OCSF class | OCSF activity |\n|---|---|---|---|\n")
	for _, typ := range audit.Types() {
		r, _ := audit.OCSFRuleOf(typ)
		w("| [`%s`](#%s) | %s | %s (%d) | %s |\n", typ, anchor(typ), strings.Join(outcomes(byType[typ]), ", "), r.ClassName(), r.ClassUID, activityText(r))
	}
	w("\n")
	for _, typ := range audit.Types() {
		evs := byType[typ]
		if len(evs) == 0 {
			t.Errorf("no sample of %s: add one to constructors()", typ)
			continue
		}
		cs := ctors[typ]
		if len(cs) == 0 {
			t.Errorf("no constructor names %s", typ)
		}
		cols, details, _ := audit.Required(typ)
		w("### `%s`\n\n", typ)
		for _, c := range cs {
			w("%s\n\n", c.doc)
		}
		for _, c := range cs {
			w("- Constructor: `%s`\n", c.signature)
		}
		w("- Outcome: %s\n", strings.Join(outcomes(evs), ", "))
		w("- Columns: %s\n", listText(cols, seenColumns(evs)))
		w("- Details: %s\n", listText(details, seenDetails(evs)))
		r, _ := audit.OCSFRuleOf(typ)
		w("- OCSF: %s (`class_uid` %d), %s; %s\n\n", r.ClassName(), r.ClassUID, activityText(r), classAttributes(evs))
	}

	w("## Details keys\n\n| key | meaning |\n|---|---|\n")
	docs := audit.DetailDocs()
	for _, k := range slices.Sorted(maps.Keys(docs)) {
		w("| `%s` | %s |\n", k, docs[k])
	}

	w("\n## OCSF %s\n\n", audit.OCSFVersion)
	w("`agentid audit export --format ocsf` writes each event as one OCSF %s event (one JSON object per line) of the class its type maps to, so that a SIEM ingests it without a custom parser. ", audit.OCSFVersion)
	w("`TestOCSFRequired` checks every mapped event against the attributes OCSF %s requires of its class and of each object in it (`internal/audit/testdata/ocsf-%s.json` says where those facts come from).\n\n", audit.OCSFVersion, audit.OCSFVersion)
	w("Every event has:\n\n")
	w("- `class_uid`, `category_uid`, `activity_id`, `type_uid` (= `class_uid` × 100 + `activity_id`) and their names;\n")
	w("- `time`: the event time in milliseconds since the epoch;\n")
	w("- `metadata`: `version` %q, `product` {`name` \"agentid\", `vendor_name`}, `uid` the event id, `tenant_uid`, `correlation_uid` the request id, `event_code` the agentid type, `log_name` \"audit\";\n", audit.OCSFVersion)
	w("- `actor`: `app_uid` the client (agent), `user` the person it acts for; for an admin command `app_name` \"agentid cli\" and `user.name` the operating-system account; otherwise `app_name` \"agentid\";\n")
	w("- `src_endpoint.ip`: the request's peer, when there is one; `http_request.user_agent`: its `User-Agent`;\n")
	w("- `status` the outcome, `status_id` 1 (success) or 2 (failure, denied), `status_detail` the `reason` detail;\n")
	var high []string
	for _, typ := range audit.Types() {
		if r, _ := audit.OCSFRuleOf(typ); r.Severity != 0 {
			high = append(high, fmt.Sprintf("`%s` (%d)", typ, r.Severity))
		}
	}
	w("- `severity_id`: 1 (Informational) for successes, 2 (Low) for failures and denials, except the failures of %s;\n", strings.Join(high, ", "))
	w("- `unmapped`: `resource`, `scopes` and every detail, so that nothing is lost.\n\n")
	w("What each class adds:\n\n| class | attributes |\n|---|---|\n")
	classes := map[int]bool{}
	for _, typ := range audit.Types() {
		r, _ := audit.OCSFRuleOf(typ)
		classes[r.ClassUID] = true
	}
	for _, c := range slices.Sorted(maps.Keys(classes)) {
		r := audit.OCSFRule{ClassUID: c}
		w("| %s (%d) | %s |\n", r.ClassName(), c, audit.OCSFClassDoc(c))
	}
	w("\nAn event of a type this version does not define maps to the Base Event class (0), activity Other (99), everything in `unmapped`.\n")
	return []byte(b.String())
}

func anchor(typ string) string {
	return strings.NewReplacer(".", "", "_", "_").Replace(typ)
}

func outcomes(evs []*store.AuditEvent) []string {
	set := map[string]bool{}
	for _, ev := range evs {
		set[ev.Outcome] = true
	}
	return slices.Sorted(maps.Keys(set))
}

func activityText(r audit.OCSFRule) string {
	s := fmt.Sprintf("%s (%d)", r.ActivityName(r.ActivityID), r.ActivityID)
	if len(r.ActivityByChange) > 0 {
		var by []string
		for _, ch := range slices.Sorted(maps.Keys(r.ActivityByChange)) {
			a := r.ActivityByChange[ch]
			by = append(by, fmt.Sprintf("`%s` → %s (%d)", ch, r.ActivityName(a), a))
		}
		s += "; by `change`: " + strings.Join(by, ", ")
	}
	return s
}

func seenColumns(evs []*store.AuditEvent) []string {
	set := map[string]bool{}
	for _, ev := range evs {
		for col, v := range map[string]bool{"client_id": ev.ClientID != "", "user_id": ev.UserID != "", "resource": ev.Resource != "", "scopes": len(ev.Scopes) > 0} {
			if v {
				set[col] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// metaDetails are the details keys any event may carry, from its request
// rather than its type.
var metaDetails = map[string]bool{store.DetailClientRequestID: true, "actor": true, "os_user": true, "actor_id": true,
	audit.DetailUserAgent: true, audit.DetailRegistrationMethod: true, audit.DetailClientType: true, audit.DetailCIMDHost: true}

func seenDetails(evs []*store.AuditEvent) []string {
	set := map[string]bool{}
	for _, ev := range evs {
		for k := range ev.StoredDetails() {
			if !metaDetails[k] {
				set[k] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// listText says which of seen are always there (required) and which may be.
func listText(required, seen []string) string {
	var always, may []string
	for _, k := range required {
		always = append(always, "`"+k+"`")
	}
	for _, k := range seen {
		if !slices.Contains(required, k) {
			may = append(may, "`"+k+"`")
		}
	}
	switch {
	case len(always) == 0 && len(may) == 0:
		return "none"
	case len(may) == 0:
		return "always " + strings.Join(always, ", ")
	case len(always) == 0:
		return "when known " + strings.Join(may, ", ")
	}
	return "always " + strings.Join(always, ", ") + "; when known " + strings.Join(may, ", ")
}

// classAttributes names the class's own attributes the type's events get.
func classAttributes(evs []*store.AuditEvent) string {
	common := map[string]bool{"class_uid": true, "class_name": true, "category_uid": true, "category_name": true, "activity_id": true,
		"activity_name": true, "type_uid": true, "type_name": true, "time": true, "metadata": true, "actor": true, "status": true,
		"status_id": true, "status_detail": true, "severity_id": true, "src_endpoint": true, "unmapped": true}
	set := map[string]bool{}
	for _, ev := range evs {
		for k, v := range audit.OCSF(ev) {
			if common[k] {
				continue
			}
			if req, ok := v.(map[string]any); k == "http_request" && ok && len(req) == 1 && req["user_agent"] != nil {
				continue // only the user agent every event may carry
			}
			if k == "entity" {
				k = fmt.Sprintf("entity (type `%s`)", v.(map[string]any)["type"])
			} else {
				k = "`" + k + "`"
			}
			set[k] = true
		}
	}
	if len(set) == 0 {
		return "no class attributes"
	}
	return strings.Join(slices.Sorted(maps.Keys(set)), ", ")
}

// firstDiff shows the first line where want and got differ.
func firstDiff(want, got []byte) string {
	wl, gl := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := range max(len(wl), len(gl)) {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\n  file: %s\n  code: %s", i+1, w, g)
		}
	}
	return ""
}
