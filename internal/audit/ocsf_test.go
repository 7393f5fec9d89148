package audit_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// ocsfSchema is testdata/ocsf-1.8.0.json: what OCSF 1.8.0 requires of the
// classes the trail maps to (see its "source").
type ocsfSchema struct {
	Source       string            `json:"source"`
	Version      string            `json:"version"`
	BaseRequired []string          `json:"base_required"`
	Categories   map[string]string `json:"categories"`
	Classes      map[string]struct {
		Name       string   `json:"name"`
		Required   []string `json:"required"`
		Activities []int    `json:"activities"`
		JustOne    []string `json:"just_one"`
	} `json:"classes"`
	Enums          map[string][]int  `json:"enums"`
	AttributeTypes map[string]string `json:"attribute_types"`
	Objects        map[string]struct {
		Required   []string          `json:"required"`
		AtLeastOne []string          `json:"at_least_one"`
		Types      map[string]string `json:"types"`
	} `json:"objects"`
}

func loadOCSFSchema(t *testing.T) *ocsfSchema {
	t.Helper()
	b, err := os.ReadFile("testdata/ocsf-1.8.0.json")
	if err != nil {
		t.Fatal(err)
	}
	var s ocsfSchema
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("testdata/ocsf-1.8.0.json: %v", err)
	}
	return &s
}

// ocsfSamples are events to map: one of every type (constructors), the
// variants that change a mapping (activity by change, an unknown user, no
// address, an admin command), and a type this package does not define.
func ocsfSamples() map[string]*store.AuditEvent {
	out := map[string]*store.AuditEvent{}
	for typ, ev := range constructors() {
		out[typ] = ev
	}
	cli := audit.Meta{Time: at, Actor: audit.ActorCLI, OSUser: "ops"}
	out["client.updated disabled"] = audit.NewClientUpdated(meta, audit.ClientUpdatedFields{ClientID: "c", Change: audit.ChangeDisabled})
	out["client.updated enabled by the CLI"] = audit.NewClientUpdated(cli, audit.ClientUpdatedFields{ClientID: "c", Change: audit.ChangeEnabled})
	out["client.updated deprovisioned in the console"] = audit.NewClientUpdated(audit.Meta{Time: at, Actor: audit.ActorConsole, ActorID: "u-admin"}, audit.ClientUpdatedFields{ClientID: "c", Change: audit.ChangeDeprovisioned})
	out["user.updated disabled by an admin API client"] = audit.NewUserUpdated(audit.Meta{Time: at, Actor: audit.ActorAdminAPI, ActorID: "siem"}, "u", audit.ChangeDisabled)
	out["user.updated password"] = audit.NewUserUpdated(meta, "u", "password")
	out["user.updated disabled"] = audit.NewUserUpdated(meta, "u", audit.ChangeDisabled)
	out["user.updated groups"] = audit.NewUserAccessUpdated(meta, "u", audit.ChangeGroups, []string{"eng-oncall", "Site Ops"}, nil)
	out["user.login_failed unknown user, no address"] = audit.NewLoginFailed(audit.Meta{Time: at}, "")
	out["token.issued client credentials"] = audit.NewTokenIssued(meta, audit.TokenIssuedFields{ClientID: "c", Resource: key.Resource, Scopes: []string{"s"}, GrantType: "client_credentials", JTI: "j", Policy: dec})
	out["code.replayed without scopes"] = audit.NewCodeReplayed(meta, "c")
	out["connection.refreshed in the background"] = audit.NewConnectionRefreshed(audit.Meta{Time: at}, audit.ConnectionFields{ProviderID: "calendar", ConnectionID: "conn_1", Trigger: "background"})
	out["connection.retrieval_denied without connection"] = audit.NewConnectionRetrievalDenied(meta, audit.RetrievalFields{ClientID: "mcp", Resource: key.Resource, UserID: "u", Reason: "no_connection"})
	out["foreign type"] = &store.AuditEvent{TenantID: "t1", Time: at, Type: "tool.called", Outcome: "odd"}
	for _, ev := range out {
		ev.ID = 42
	}
	return out
}

// TestOCSFRequired maps every sample and checks the result against OCSF
// 1.8.0: every attribute its class requires, with a valid type and enum
// value; the ids consistent (type_uid = class_uid*100 + activity_id); the
// objects' own required attributes and constraints; nothing the schema
// does not define outside "unmapped".
func TestOCSFRequired(t *testing.T) {
	schema := loadOCSFSchema(t)
	for name, ev := range ocsfSamples() {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(audit.OCSF(ev))
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.UseNumber()
			var got map[string]any
			if err := dec.Decode(&got); err != nil {
				t.Fatal(err)
			}
			for _, p := range schema.check(got) {
				t.Error(p)
			}
			if v := got["time"].(json.Number).String(); v != strconv.FormatInt(at.UnixMilli(), 10) {
				t.Errorf("time = %s, want the event's time in milliseconds", v)
			}
			md := got["metadata"].(map[string]any)
			if md["version"] != schema.Version || md["uid"] != "42" {
				t.Errorf("metadata = %v, want version %s and the event id as uid", md, schema.Version)
			}
			if t.Failed() {
				t.Logf("mapped: %s", b)
			}
		})
	}
}

// TestOCSFEveryType: every event type has its own rule (not the base
// event fallback) in a class the schema knows.
func TestOCSFEveryType(t *testing.T) {
	schema := loadOCSFSchema(t)
	for _, typ := range audit.Types() {
		r, ok := audit.OCSFRuleOf(typ)
		if !ok || r.ClassUID == audit.OCSFBaseEvent {
			t.Errorf("%s: no OCSF rule", typ)
			continue
		}
		if _, ok := schema.Classes[strconv.Itoa(r.ClassUID)]; !ok {
			t.Errorf("%s: class %d not in the schema facts", typ, r.ClassUID)
		}
	}
}

// TestOCSFMappingDetails pins the choices a SIEM rule would key on.
func TestOCSFMappingDetails(t *testing.T) {
	samples := ocsfSamples()
	tests := []struct {
		sample              string
		class, activity     int
		severity, status    int
		userUID, actorApp   string
		privileges, session string
	}{
		{audit.TokenIssued, 3003, 1, 1, 1, "u", "c", "notes.read", "j"},
		{"token.issued client credentials", 3003, 1, 1, 1, "c", "c", "s", "j"},
		{audit.TokenDenied, 3003, 1, 2, 2, "c", "c", "notes.read", ""},
		{audit.RefreshReuse, 3002, 5, 4, 2, "u", "c", "", "g"},
		{audit.CodeReplayed, 3003, 1, 4, 2, "c", "c", "", ""},
		{audit.ConsentGiven, 3005, 1, 1, 1, "u-1", "agent-1", "notes.read", ""},
		{audit.ConsentDenied, 3005, 99, 2, 2, "u-1", "agent-1", "notes.read", ""},
		{"client.updated disabled", 3004, 9, 1, 1, "", "c", "", ""},
		{"user.updated password", 3001, 3, 1, 1, "u", "", "", ""},
		{audit.ConnectionRetrieved, 6004, 1, 1, 1, "u", "mcp", "", ""},
		{"connection.retrieval_denied without connection", 6004, 2, 2, 2, "u", "mcp", "", ""},
		{"foreign type", 0, 99, 1, 99, "", "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.sample, func(t *testing.T) {
			ev, ok := samples[tc.sample]
			if !ok {
				t.Fatalf("no sample %q", tc.sample)
			}
			got := audit.OCSF(ev)
			if got["class_uid"] != tc.class || got["activity_id"] != tc.activity || got["type_uid"] != tc.class*100+tc.activity ||
				got["severity_id"] != tc.severity || got["status_id"] != tc.status {
				t.Errorf("class %v activity %v type %v severity %v status %v, want %d %d %d %d %d", got["class_uid"], got["activity_id"],
					got["type_uid"], got["severity_id"], got["status_id"], tc.class, tc.activity, tc.class*100+tc.activity, tc.severity, tc.status)
			}
			if tc.userUID != "" {
				if u, _ := got["user"].(map[string]any); u == nil || u["uid"] != tc.userUID {
					t.Errorf("user = %v, want uid %s", got["user"], tc.userUID)
				}
			}
			actor := got["actor"].(map[string]any)
			if tc.actorApp != "" && actor["app_uid"] != tc.actorApp {
				t.Errorf("actor = %v, want app_uid %s", actor, tc.actorApp)
			}
			if tc.privileges != "" && !slices.Contains(got["privileges"].([]string), tc.privileges) {
				t.Errorf("privileges = %v, want %s", got["privileges"], tc.privileges)
			}
			if tc.session != "" && got["session"].(map[string]any)["uid"] != tc.session {
				t.Errorf("session = %v, want uid %s", got["session"], tc.session)
			}
		})
	}
	t.Run("admin command", func(t *testing.T) {
		actor := audit.OCSF(samples["client.updated enabled by the CLI"])["actor"].(map[string]any)
		if actor["app_name"] != "agentid cli" || actor["user"].(map[string]any)["name"] != "ops" {
			t.Errorf("actor = %v, want the CLI and its OS user", actor)
		}
	})
	t.Run("details are kept", func(t *testing.T) {
		u := audit.OCSF(samples[audit.TokenIssued])["unmapped"].(map[string]any)
		if d := u["details"].(map[string]string); d["grant_type"] != "authorization_code" || d[audit.DetailPolicyVersion] != "7" {
			t.Errorf("unmapped = %v, want every detail", u)
		}
	})
}

// TestOCSFCheckerCatches: the checker TestOCSFRequired relies on reports
// each kind of mistake a mapping could make.
func TestOCSFCheckerCatches(t *testing.T) {
	schema := loadOCSFSchema(t)
	good := func() map[string]any {
		var m map[string]any
		b, _ := json.Marshal(audit.OCSF(constructors()[audit.TokenIssued]))
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if ps := schema.check(good()); len(ps) > 0 {
		t.Fatalf("the good event fails: %v", ps)
	}
	tests := map[string]func(m map[string]any){
		"class required missing":  func(m map[string]any) { delete(m, "user") },
		"base required missing":   func(m map[string]any) { delete(m, "severity_id") },
		"type_uid inconsistent":   func(m map[string]any) { m["type_uid"] = json.Number("300302") },
		"activity not in class":   func(m map[string]any) { m["activity_id"], m["type_uid"] = json.Number("7"), json.Number("300307") },
		"severity out of enum":    func(m map[string]any) { m["severity_id"] = json.Number("9") },
		"time not an integer":     func(m map[string]any) { m["time"] = "2026-12-02T10:00:00Z" },
		"metadata lacks version":  func(m map[string]any) { delete(m["metadata"].(map[string]any), "version") },
		"user with no identity":   func(m map[string]any) { m["user"] = map[string]any{"type_id": json.Number("1")} },
		"user type out of enum":   func(m map[string]any) { m["user"].(map[string]any)["type_id"] = json.Number("7") },
		"privileges and group":    func(m map[string]any) { m["group"] = map[string]any{"name": "g"} },
		"no privileges":           func(m map[string]any) { delete(m, "privileges") },
		"undefined attribute":     func(m map[string]any) { m["resource_uri"] = "https://x" },
		"bad ip":                  func(m map[string]any) { m["src_endpoint"] = map[string]any{"ip": "not-an-ip"} },
		"empty actor":             func(m map[string]any) { m["actor"] = map[string]any{} },
		"category of other class": func(m map[string]any) { m["category_uid"] = json.Number("6") },
	}
	for name, breakIt := range tests {
		t.Run(name, func(t *testing.T) {
			m := good()
			breakIt(m)
			if ps := schema.check(m); len(ps) == 0 {
				t.Error("checker found nothing")
			}
		})
	}
}

// check returns every way ev (decoded with UseNumber) falls short of the
// schema.
func (s *ocsfSchema) check(ev map[string]any) []string {
	var ps []string
	bad := func(format string, args ...any) { ps = append(ps, fmt.Sprintf(format, args...)) }
	classUID, ok := intOf(ev["class_uid"])
	if !ok {
		return []string{fmt.Sprintf("class_uid %v is not an integer", ev["class_uid"])}
	}
	class, ok := s.Classes[strconv.FormatInt(classUID, 10)]
	if !ok {
		return []string{fmt.Sprintf("class_uid %d is not a class of the schema facts", classUID)}
	}
	for _, a := range append(slices.Clone(s.BaseRequired), class.Required...) {
		if v, ok := ev[a]; !ok || v == nil {
			bad("%s (class %s) lacks required attribute %s", class.Name, strconv.FormatInt(classUID, 10), a)
		}
	}
	if len(class.JustOne) > 0 {
		n := 0
		for _, a := range class.JustOne {
			if _, ok := ev[a]; ok {
				n++
			}
		}
		if n != 1 {
			bad("%s needs just one of %v, has %d", class.Name, class.JustOne, n)
		}
	}
	category, _ := intOf(ev["category_uid"])
	if category != classUID/1000 {
		bad("category_uid %d, class %d is in category %d", category, classUID, classUID/1000)
	}
	if _, ok := s.Categories[strconv.FormatInt(category, 10)]; !ok && category != 0 {
		bad("category_uid %d is not a category", category)
	}
	activity, _ := intOf(ev["activity_id"])
	if !slices.Contains(class.Activities, int(activity)) {
		bad("activity_id %d is not an activity of %s", activity, class.Name)
	}
	if typ, _ := intOf(ev["type_uid"]); typ != classUID*100+activity {
		bad("type_uid %d, want class_uid*100+activity_id = %d", typ, classUID*100+activity)
	}
	for _, e := range []string{"severity_id", "status_id", "auth_protocol_id"} {
		if v, ok := ev[e]; ok {
			n, _ := intOf(v)
			if !slices.Contains(s.Enums[e], int(n)) {
				bad("%s %v is not in its enumeration", e, v)
			}
		}
	}
	for a, v := range ev {
		typ, ok := s.AttributeTypes[a]
		if !ok {
			bad("attribute %s is not one the schema facts define (put it in unmapped)", a)
			continue
		}
		ps = append(ps, s.checkValue(a, typ, v)...)
	}
	return ps
}

// checkValue checks one value against a type of the schema facts: a
// scalar type, an object name, or either with [] for an array.
func (s *ocsfSchema) checkValue(path, typ string, v any) []string {
	if elem, ok := strings.CutSuffix(typ, "[]"); ok {
		arr, ok := v.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %T, want an array of %s", path, v, elem)}
		}
		var ps []string
		for i, x := range arr {
			ps = append(ps, s.checkValue(fmt.Sprintf("%s[%d]", path, i), elem, x)...)
		}
		return ps
	}
	switch typ {
	case "integer", "long", "timestamp":
		if _, ok := intOf(v); !ok {
			return []string{fmt.Sprintf("%s: %v, want an integer", path, v)}
		}
		return nil
	case "string":
		if sv, ok := v.(string); !ok || sv == "" {
			return []string{fmt.Sprintf("%s: %v, want a non-empty string", path, v)}
		}
		return nil
	case "ip":
		if sv, _ := v.(string); !validIP(sv) {
			return []string{fmt.Sprintf("%s: %v, want an IP address", path, v)}
		}
		return nil
	case "object":
		if _, ok := v.(map[string]any); !ok {
			return []string{fmt.Sprintf("%s: %T, want an object", path, v)}
		}
		return nil
	}
	obj, ok := s.Objects[typ]
	if !ok {
		return []string{fmt.Sprintf("%s: type %s unknown to the schema facts", path, typ)}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return []string{fmt.Sprintf("%s: %T, want a %s object", path, v, typ)}
	}
	var ps []string
	for _, r := range obj.Required {
		if _, ok := m[r]; !ok {
			ps = append(ps, fmt.Sprintf("%s (%s) lacks required %s", path, typ, r))
		}
	}
	if len(obj.AtLeastOne) > 0 && !slices.ContainsFunc(obj.AtLeastOne, func(a string) bool { _, ok := m[a]; return ok }) {
		ps = append(ps, fmt.Sprintf("%s (%s) needs at least one of %v", path, typ, obj.AtLeastOne))
	}
	for k, x := range m {
		kt, ok := obj.Types[k]
		if !ok {
			ps = append(ps, fmt.Sprintf("%s.%s: not an attribute of %s in the schema facts", path, k, typ))
			continue
		}
		ps = append(ps, s.checkValue(path+"."+k, kt, x)...)
		if e, ok := s.Enums[typ+"."+k]; ok {
			if n, _ := intOf(x); !slices.Contains(e, int(n)) {
				ps = append(ps, fmt.Sprintf("%s.%s %v is not in its enumeration", path, k, x))
			}
		}
	}
	return ps
}

func intOf(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case int:
		return int64(n), true
	}
	return 0, false
}

func validIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}
