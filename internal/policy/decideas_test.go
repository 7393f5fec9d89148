package policy

import (
	"reflect"
	"testing"
)

// TestDecideAsMatchesDecide: deciding several actions over entities built
// once gives exactly what separate decisions give.
func TestDecideAsMatchesDecide(t *testing.T) {
	s := defaultSet(t)
	for _, agent := range []Agent{manualAgent, dcrAgent, trustedDCR} {
		for _, user := range []*User{nil, alice} {
			req := &Request{Agent: agent, User: user, Resource: homeResource, Scopes: []Scope{readScope, deleteScope}, Context: Context{GrantType: "authorization_code"}}
			got, err := s.DecideAs(req, ActionGrant, ActionRegister)
			if err != nil {
				t.Fatal(err)
			}
			for i, a := range []Action{ActionGrant, ActionRegister} {
				r := *req
				r.Action = a
				want, err := s.Decide(&r)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got[i], want) {
					t.Errorf("agent %s, user %v, %s: DecideAs = %+v, Decide = %+v", agent.ID, user != nil, a, got[i], want)
				}
			}
		}
	}
	if _, err := s.DecideAs(&Request{Agent: manualAgent, Resource: homeResource, Scopes: []Scope{readScope}}, "nonsense"); err == nil {
		t.Fatal("an unknown action was decided")
	}
}
