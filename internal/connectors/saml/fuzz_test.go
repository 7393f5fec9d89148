package saml

import (
	"context"
	"encoding/base64"
	"testing"

	crewsaml "github.com/crewjam/saml"

	"github.com/agentid/agentid/internal/connectors"
	"github.com/agentid/agentid/internal/store"
)

// FuzzFinish feeds Finish arbitrary SAMLResponse values (raw, and as the
// base64 the form carries) for a live attempt. The one genuine Response
// among the seeds is used up before fuzzing, so nothing may be accepted.
func FuzzFinish(f *testing.F) {
	fx := newFixture(f, nil)
	a, o := fxAttempt(f, fx)
	good := fx.idp.response(f, o, fx.idp.assertion(f, o))
	if _, err := fx.p.Finish(context.Background(), a, encode(f, good), a.RelayState); err != nil {
		f.Fatalf("seed not accepted: %v (%s)", err, cause(err))
	}
	raw, _ := base64.StdEncoding.DecodeString(encode(f, good))
	f.Add(raw)
	unsigned := o
	unsigned.signAssertion = false
	raw, _ = base64.StdEncoding.DecodeString(encode(f, fx.idp.response(f, unsigned, fx.idp.assertion(f, unsigned))))
	f.Add(raw)
	f.Add([]byte(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		for _, in := range []string{base64.StdEncoding.EncodeToString(doc), string(doc)} {
			id, err := fx.p.Finish(context.Background(), a, in, a.RelayState)
			if err == nil || id != nil {
				t.Fatalf("accepted %q: %+v", doc, id)
			}
			if _, ok := err.(*connectors.Error); !ok {
				t.Fatalf("error %T, want *connectors.Error", err)
			}
		}
	})
}

func fxAttempt(tb testing.TB, fx *fixture) (*Attempt, issue) {
	_, a, err := fx.p.Begin("/")
	if err != nil {
		tb.Fatal(err)
	}
	return a, issue{now: fx.clock.Now(), requestID: a.RequestID, signAssertion: true, attributes: testAttrs}
}

// TestMapping: how attributes become the person.
func TestMapping(t *testing.T) {
	vals := func(v ...string) []crewsaml.AttributeValue {
		out := make([]crewsaml.AttributeValue, len(v))
		for i, s := range v {
			out[i].Value = s
		}
		return out
	}
	as := func(format, nameID string, attrs ...crewsaml.Attribute) *crewsaml.Assertion {
		return &crewsaml.Assertion{
			Subject:             &crewsaml.Subject{NameID: &crewsaml.NameID{Format: format, Value: nameID}},
			AttributeStatements: []crewsaml.AttributeStatement{{Attributes: attrs}},
		}
	}
	persistent := string(crewsaml.PersistentNameIDFormat)
	long := string(make([]byte, maxValue+1))
	for name, tc := range map[string]struct {
		m       store.ClaimMapping
		as      *crewsaml.Assertion
		want    Identity
		wantErr bool
	}{
		"defaults: email by OID, name by FriendlyName, username from email": {
			as: as(persistent, "p1",
				crewsaml.Attribute{Name: "urn:oid:0.9.2342.19200300.100.1.3", Values: vals("a@corp.example")},
				crewsaml.Attribute{Name: "urn:oid:2.16.840.1.113730.3.1.241", FriendlyName: "displayName", Values: vals(" Alice ")}),
			want: Identity{Subject: "p1", NameIDFormat: persistent, Username: "a@corp.example", Email: "a@corp.example", Name: "Alice"},
		},
		"email NameID is the email, the username falls back to it": {
			as:   as(string(crewsaml.EmailAddressNameIDFormat), "b@corp.example"),
			want: Identity{Subject: "b@corp.example", NameIDFormat: string(crewsaml.EmailAddressNameIDFormat), Username: "b@corp.example", Email: "b@corp.example"},
		},
		"nothing but a NameID: username is the NameID": {
			as:   as("", "opaque-7"),
			want: Identity{Subject: "opaque-7", Username: "opaque-7"},
		},
		"mapped groups present, roles absent (cleared), attributes joined": {
			m: store.ClaimMapping{Username: "uid", Groups: "memberOf", Roles: "roles", Attributes: map[string]string{"cost_center": "cc", "missing": "nope"}},
			as: as(persistent, "p2",
				crewsaml.Attribute{Name: "uid", Values: vals("carol")},
				crewsaml.Attribute{Name: "memberOf", Values: vals("eng", "ops", "eng")},
				crewsaml.Attribute{Name: "cc", Values: vals("42", "43")}),
			want: Identity{Subject: "p2", NameIDFormat: persistent, Username: "carol", Groups: []string{"eng", "ops"}, Roles: []string{}, Attributes: map[string]string{"cost_center": "42,43"}},
		},
		"two usernames":                        {m: store.ClaimMapping{Username: "uid"}, as: as(persistent, "p", crewsaml.Attribute{Name: "uid", Values: vals("a", "b")}), wantErr: true},
		"username on two lines":                {m: store.ClaimMapping{Username: "uid"}, as: as(persistent, "p", crewsaml.Attribute{Name: "uid", Values: vals("a\nb")}), wantErr: true},
		"username with an escape":              {m: store.ClaimMapping{Username: "uid"}, as: as(persistent, "p", crewsaml.Attribute{Name: "uid", Values: vals("carol\x1b[2K")}), wantErr: true},
		"username with a zero-width space":     {m: store.ClaimMapping{Username: "uid"}, as: as(persistent, "p", crewsaml.Attribute{Name: "uid", Values: vals("carol\u200b")}), wantErr: true},
		"NameID username with a bidi override": {as: as(persistent, "\u202elorac"), wantErr: true},
		"name with a tab":                      {as: as(persistent, "p", crewsaml.Attribute{Name: "displayName", Values: vals("A\tB")}), wantErr: true},
		"group too long":                       {m: store.ClaimMapping{Groups: "g"}, as: as(persistent, "p", crewsaml.Attribute{Name: "g", Values: vals(long)}), wantErr: true},
		"transient NameID":                     {as: as(string(crewsaml.TransientNameIDFormat), "t1"), wantErr: true},
		"empty NameID":                         {as: as(persistent, " "), wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := mapIdentity(tc.m, tc.as)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("accepted: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Subject != tc.want.Subject || got.NameIDFormat != tc.want.NameIDFormat || got.Username != tc.want.Username ||
				got.Email != tc.want.Email || got.Name != tc.want.Name || !equal(got.Groups, tc.want.Groups) ||
				!equal(got.Roles, tc.want.Roles) || len(got.Attributes) != len(tc.want.Attributes) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for k, v := range tc.want.Attributes {
				if got.Attributes[k] != v {
					t.Fatalf("attribute %s = %q, want %q", k, got.Attributes[k], v)
				}
			}
		})
	}
}

// equal compares lists, nil and empty apart.
func equal(a, b []string) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
