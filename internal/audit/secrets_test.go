package audit_test

import (
	"crypto/rand"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// allConstructors is every event constructor; TestConstructorsCarryNoSecret
// checks the list against the source, so a new one cannot be missed.
var allConstructors = []any{
	audit.NewDomainUpdated, audit.NewDomainRemoved, audit.NewInstallationRevoked, audit.NewClientRegistered,
	audit.NewClientRegistrationDeduplicated, audit.NewClientExpired, audit.NewClientUpdated, audit.NewClientDeleted,
	audit.NewClientAuthFailed, audit.NewClientTokensRevoked, audit.NewUserAccessRevoked, audit.NewLoginSucceeded,
	audit.NewLoginFailed, audit.NewConsentGiven, audit.NewConsentDenied, audit.NewConsentRevoked, audit.NewConsentExpired,
	audit.NewCodeIssued, audit.NewCodeReplayed, audit.NewTokenIssued, audit.NewTokenDenied, audit.NewRefreshRotated,
	audit.NewRefreshReuse, audit.NewRefreshReusedWithinInterval, audit.NewTokenRevoked, audit.NewSigningKeyRotated,
	audit.NewPolicyApplied, audit.NewUserCreated, audit.NewUserUpdated, audit.NewUserAccessUpdated, audit.NewResourceCreated, audit.NewResourceUpdated, audit.NewResourceUserClaimsUpdated,
	audit.NewResourceDeleted, audit.NewIdentityAssertionIssued, audit.NewIdentityAssertionDenied, audit.NewIssuerAdded,
	audit.NewIssuerUpdated, audit.NewIssuerDeleted, audit.NewProviderAdded, audit.NewProviderUpdated, audit.NewProviderDeleted,
	audit.NewConnectionCreated, audit.NewConnectionRefreshed, audit.NewConnectionRefreshFailed, audit.NewConnectionNeedsReauth,
	audit.NewConnectionRotated, audit.NewConnectionRevoked, audit.NewConnectionRetrieved, audit.NewConnectionRetrievalDenied,
	audit.NewKEKRewrapped, audit.NewCheckpoint, audit.NewPruned, audit.NewVerified, audit.NewToolInvoked,
	audit.NewTokenIntrospectedInactive,
	audit.NewSinkDeadLettered,
	audit.NewConnectorCreated, audit.NewConnectorUpdated, audit.NewUserSignedIn,
	audit.NewGroupCreated, audit.NewGroupUpdated, audit.NewGroupDeleted,
}

// inputKinds classifies every input a constructor takes, by its field or
// parameter name (lower case): "name" for what names something (ids, jti,
// labels, scopes), which an event may record, and "material" for what is
// or holds a credential, which it must never record verbatim. An input
// not listed fails the test until someone decides which it is.
var inputKinds = map[string]string{
	// Meta.
	"tenantid": "name", "requestid": "name", "clientrequestid": "name", "ip": "name", "actor": "name", "osuser": "name",
	"useragent": "name", "type": "name", "cimdhost": "name",
	// Who and what.
	"clientid": "name", "userid": "name", "resource": "name", "uri": "name", "scopes": "name", "scope": "name", "ceiling": "name",
	"ceilingadded": "name", "ceilingremoved": "name", "granted": "name", "name": "name", "method": "name", "authmethod": "name",
	"status": "name", "holdpolicies": "name", "softwareissuer": "name", "change": "name", "tags": "name", "tagsadded": "name",
	"tagsremoved": "name", "reason": "name", "fields": "name", "duration": "name", "by": "name", "grantid": "name",
	"noticedby": "name", "granttype": "name", "chain": "name", "actchain": "name", "agent": "name", "redirecturi": "name",
	"audience": "name", "remoteclientid": "name", "pattern": "name", "trust": "name", "previous": "name",
	"operation": "name", "files": "name", "sha256": "name", "comment": "name", "kid": "name", "algorithm": "name",
	"providerid": "name", "kind": "name", "connectionid": "name", "ownerkind": "name", "ownerid": "name",
	"trigger": "name", "kekid": "name", "policyversion": "name", "policyids": "name", "errors": "name",
	"tool": "name", "outcome": "name", "reportingclient": "name", "reportid": "name", "actorid": "name",
	"introspectingclient": "name", "added": "name", "removed": "name", "changes": "name",
	// Tokens by their jti only.
	"jti": "name", "subjectjti": "name", "tokentype": "name",
	// Trusted issuers: their settings are names; the key set is material
	// (an event records its digest and key ids).
	"id": "name", "issuer": "name", "jwksuri": "name", "audiences": "name", "algorithms": "name", "uses": "name",
	"userclaim": "name", "claims": "name", "jwks": "material",
	// Connectors: their settings are names; the client secret never
	// reaches a constructor (ClientAuth says how it is kept).
	"connectorid": "name", "upstreamclientid": "name", "emaildomains": "name", "clientauth": "name",
	// The audit chain: hashes of events and checkpoint signatures (JWS the
	// hub signs over them) are public, verifiable statements.
	"headhash": "name", "anchorprevhash": "name", "signature": "name",
	// Streaming sinks: the sink's name and kind, event ids, counts, and
	// the error text the dispatcher built (a status or a network failure).
	"sink": "name", "sinktype": "name", "firstid": "name", "lastid": "name", "events": "name", "attempts": "name",
	"error": "name",
	// SCIM groups: ids and display names.
	"groupid": "name",
}

// secretish are input names that would hold a credential; none may be
// classified "name" except those listed in notSecret.
var (
	secretish = regexp.MustCompile(`(?i)secret|password|passwd|token|assertion|hash|private|credential|apikey|^code$|jwks$|cookie`)
	notSecret = map[string]bool{"tokentype": true, "headhash": true, "anchorprevhash": true}
)

// TestConstructorsCarryNoSecret calls every constructor with every string
// input set to its own random high-entropy value (a key set with a
// private key for a trusted issuer) and scans the event: each such value
// found must come from an input that names something, never from one that
// is material; and no other high-entropy text may appear (the only
// derived value allowed is a key set's digest).
func TestConstructorsCarryNoSecret(t *testing.T) {
	decls := constructorDecls(t)
	var listed []string
	for _, fn := range allConstructors {
		name := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
		listed = append(listed, name[strings.LastIndex(name, ".")+1:])
	}
	for name := range decls {
		if !slices.Contains(listed, name) {
			t.Errorf("constructor %s is not in allConstructors", name)
		}
	}
	for k, kind := range inputKinds {
		if kind == "name" && secretish.MatchString(k) && !notSecret[k] {
			t.Errorf("input %q looks like a credential but is classified as a name", k)
		}
	}
	for i, fn := range allConstructors {
		name := listed[i]
		decl, ok := decls[name]
		if !ok {
			t.Errorf("%s: not found in the source", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			f := &filler{t: t, values: map[string]string{}}
			fv := reflect.ValueOf(fn)
			ft := fv.Type()
			params := paramNames(decl)
			args := make([]reflect.Value, ft.NumIn())
			for i := range args {
				args[i] = reflect.New(ft.In(i)).Elem()
				f.fill(args[i], params[i])
			}
			ev := fv.Call(args)[0].Interface().(*store.AuditEvent)
			out := eventStrings(ev)
			for value, path := range f.values {
				found := slices.ContainsFunc(out, func(s string) bool { return strings.Contains(s, value) })
				if !found {
					continue
				}
				if kind := inputKinds[strings.ToLower(lastName(path))]; kind != "name" {
					t.Errorf("the event carries the value of %s, which is not a name (%q)", path, kind)
				}
			}
			for _, s := range out {
				for _, run := range highEntropy(s) {
					if _, ok := f.values[run]; ok || ev.Details["jwks_sha256"] == run || containsInput(f.values, run) {
						continue
					}
					t.Errorf("the event carries high-entropy text %q that is no input", run)
				}
			}
		})
	}
}

// filler sets every string it reaches to a fresh random value and records
// which input each came from.
type filler struct {
	t      *testing.T
	values map[string]string // value → input path
}

func (f *filler) random(path string) string {
	v := rand.Text()
	f.values[v] = path
	return v
}

func (f *filler) fill(v reflect.Value, path string) {
	kind, known := inputKinds[strings.ToLower(lastName(path))]
	switch v.Kind() {
	case reflect.String:
		if !known {
			f.t.Errorf("input %s is not classified in inputKinds", path)
		}
		if kind == "material" && strings.EqualFold(lastName(path), "jwks") {
			// A key set with a private key: the key id may be recorded,
			// the key material never.
			kid := f.random(path + ".kid")
			v.SetString(fmt.Sprintf(`{"keys":[{"kty":"EC","crv":"P-256","kid":%q,"x":%q,"y":%q,"d":%q}]}`,
				kid, f.random(path+".x"), f.random(path+".y"), f.random(path+".d")))
			return
		}
		v.SetString(f.random(path))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Uint8:
		v.SetUint(0xa5)
	case reflect.Int, reflect.Int64:
		if v.Type() == reflect.TypeFor[time.Duration]() {
			v.SetInt(int64(90 * time.Second))
		} else {
			v.SetInt(3)
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			f.fill(s.Index(i), path)
		}
		v.Set(s)
	case reflect.Map:
		if !known {
			f.t.Errorf("input %s is not classified in inputKinds", path)
		}
		m := reflect.MakeMap(v.Type())
		if v.Type().Key().Kind() == reflect.String && v.Type().Elem().Kind() == reflect.String {
			m.SetMapIndex(reflect.ValueOf(f.random(path)), reflect.ValueOf(f.random(path)))
		}
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		f.fill(p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(at))
			return
		}
		for i := range v.NumField() {
			sf := v.Type().Field(i)
			if !sf.IsExported() {
				continue
			}
			name := sf.Name
			if sf.Anonymous {
				f.fill(v.Field(i), path) // embedded: its fields are the struct's own
				continue
			}
			f.fill(v.Field(i), path+"."+name)
		}
	default:
		f.t.Errorf("input %s of kind %s: teach the filler", path, v.Kind())
	}
}

func lastName(path string) string { return path[strings.LastIndex(path, ".")+1:] }

// containsInput reports whether run is made of an input value (a value
// inside a longer run of the same alphabet).
func containsInput(values map[string]string, run string) bool {
	for v := range values {
		if strings.Contains(run, v) {
			return true
		}
	}
	return false
}

// eventStrings is every string an event holds.
func eventStrings(ev *store.AuditEvent) []string {
	out := []string{ev.TenantID, ev.Type, ev.RequestID, ev.ClientID, ev.UserID, ev.Resource, ev.IP, ev.Outcome}
	out = append(out, ev.Scopes...)
	for k, v := range ev.StoredDetails() {
		out = append(out, k, v)
	}
	return out
}

var tokenRun = regexp.MustCompile(`[A-Za-z0-9+/=_-]{20,}`)

// highEntropy returns the runs of token-like text in s that look random:
// mixing digits or cases (words and snake_case names do not), with a
// character entropy over 3.5 bits.
func highEntropy(s string) []string {
	var out []string
	for _, run := range tokenRun.FindAllString(s, -1) {
		digit := strings.ContainsAny(run, "0123456789")
		upper := strings.ToLower(run) != run
		lower := strings.ToUpper(run) != run
		if !(digit || upper && lower) {
			continue
		}
		counts := map[rune]float64{}
		for _, r := range run {
			counts[r]++
		}
		var h float64
		n := float64(len(run))
		for _, c := range counts {
			h -= c / n * math.Log2(c/n)
		}
		if h > 3.5 {
			out = append(out, run)
		}
	}
	return out
}

// constructorDecls are the package's exported New… functions returning
// *store.AuditEvent, by name, from the source.
func constructorDecls(t *testing.T) map[string]*ast.FuncDecl {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*ast.FuncDecl{}
	for _, e := range entries {
		n := e.Name()
		if !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || !strings.HasPrefix(fd.Name.Name, "New") || fd.Type.Results == nil ||
				len(fd.Type.Results.List) != 1 || exprString(fset, fd.Type.Results.List[0].Type) != "*store.AuditEvent" {
				continue
			}
			out[fd.Name.Name] = fd
		}
	}
	return out
}

// paramNames are the names of fd's parameters, one per parameter.
func paramNames(fd *ast.FuncDecl) []string {
	var out []string
	for _, field := range fd.Type.Params.List {
		for _, n := range field.Names {
			out = append(out, n.Name)
		}
	}
	return out
}
