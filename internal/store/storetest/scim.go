package storetest

import (
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// testSCIM: provisioned groups round-trip, list by id bytewise per
// tenant, are unique by id and display name in a tenant (a name freed by
// a rename or delete is free again), refuse an empty id or name, and
// write their event exactly when the write is; a user's SCIM state is
// created and replaced by PutSCIMUser and is per tenant.
func testSCIM(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	b := base()
	eng := &store.SCIMGroup{TenantID: tn, ID: "g-b", DisplayName: "eng-oncall", ExternalID: "okta-1", CreatedAt: b, UpdatedAt: b}
	ops := &store.SCIMGroup{TenantID: tn, ID: "G-a", DisplayName: "ops", CreatedAt: b, UpdatedAt: b.Add(time.Second)}
	for _, g := range []*store.SCIMGroup{eng, ops} {
		ev := event(tn, "user.updated")
		must(t, "CreateSCIMGroup "+g.ID, s.CreateSCIMGroup(ctx(t), g, ev))
		wantAudit(t, s, ev)
	}
	other := &store.SCIMGroup{TenantID: "other", ID: "g-b", DisplayName: "eng-oncall", CreatedAt: b, UpdatedAt: b}
	must(t, "CreateSCIMGroup other tenant", s.CreateSCIMGroup(ctx(t), other, nil))

	got, err := s.GetSCIMGroup(ctx(t), tn, "g-b")
	must(t, "GetSCIMGroup", err)
	checkEqual(t, "group", eng, got)
	list, err := s.ListSCIMGroups(ctx(t), tn)
	must(t, "ListSCIMGroups", err)
	checkEqual(t, "groups", []*store.SCIMGroup{ops, eng}, list)
	list, err = s.ListSCIMGroups(ctx(t), "other")
	must(t, "ListSCIMGroups other", err)
	checkEqual(t, "other tenant's groups", []*store.SCIMGroup{other}, list)

	for name, g := range map[string]*store.SCIMGroup{
		"duplicate id":   {TenantID: tn, ID: "g-b", DisplayName: "new", CreatedAt: b, UpdatedAt: b},
		"duplicate name": {TenantID: tn, ID: "g-c", DisplayName: "ops", CreatedAt: b, UpdatedAt: b},
	} {
		ev := event(tn, "user.updated")
		wantErr(t, name, s.CreateSCIMGroup(ctx(t), g, ev), store.ErrConflict)
		wantNoAudit(t, s, ev)
	}
	for name, g := range map[string]*store.SCIMGroup{
		"no id":   {TenantID: tn, DisplayName: "x", CreatedAt: b, UpdatedAt: b},
		"no name": {TenantID: tn, ID: "g-x", CreatedAt: b, UpdatedAt: b},
	} {
		wantErr(t, name, s.CreateSCIMGroup(ctx(t), g, nil), store.ErrInvalid)
		wantErr(t, name+" update", s.UpdateSCIMGroup(ctx(t), g, nil), store.ErrInvalid)
	}

	// Rename: the old name is free again; CreatedAt stays.
	upd := &store.SCIMGroup{TenantID: tn, ID: "g-b", DisplayName: "sre", UpdatedAt: b.Add(time.Hour), CreatedAt: b.Add(99 * time.Hour)}
	ev := event(tn, "user.updated")
	must(t, "UpdateSCIMGroup", s.UpdateSCIMGroup(ctx(t), upd, ev))
	wantAudit(t, s, ev)
	got, err = s.GetSCIMGroup(ctx(t), tn, "g-b")
	must(t, "GetSCIMGroup renamed", err)
	want := *upd
	want.CreatedAt = b
	checkEqual(t, "renamed group", &want, got)
	must(t, "name freed by a rename", s.CreateSCIMGroup(ctx(t), &store.SCIMGroup{TenantID: tn, ID: "g-c", DisplayName: "eng-oncall", CreatedAt: b, UpdatedAt: b}, nil))
	wantErr(t, "rename onto a taken name", s.UpdateSCIMGroup(ctx(t), &store.SCIMGroup{TenantID: tn, ID: "g-b", DisplayName: "ops", UpdatedAt: b}, nil), store.ErrConflict)
	wantErr(t, "update unknown", s.UpdateSCIMGroup(ctx(t), &store.SCIMGroup{TenantID: tn, ID: "nope", DisplayName: "y", UpdatedAt: b}, nil), store.ErrNotFound)

	ev = event(tn, "user.updated")
	must(t, "DeleteSCIMGroup", s.DeleteSCIMGroup(ctx(t), tn, "g-c", ev))
	wantAudit(t, s, ev)
	_, err = s.GetSCIMGroup(ctx(t), tn, "g-c")
	wantErr(t, "get deleted", err, store.ErrNotFound)
	ev = event(tn, "user.updated")
	wantErr(t, "delete again", s.DeleteSCIMGroup(ctx(t), tn, "g-c", ev), store.ErrNotFound)
	wantNoAudit(t, s, ev)
	if _, err := s.GetSCIMGroup(ctx(t), "other", "g-b"); err != nil {
		t.Fatalf("other tenant's group after this tenant's changes: %v", err)
	}

	// Users' SCIM state.
	_, err = s.GetSCIMUser(ctx(t), tn, "u-1")
	wantErr(t, "GetSCIMUser never put", err, store.ErrNotFound)
	wantErr(t, "PutSCIMUser without user", s.PutSCIMUser(ctx(t), &store.SCIMUser{TenantID: tn}), store.ErrInvalid)
	u2 := &store.SCIMUser{TenantID: tn, UserID: "u-2", UpdatedAt: b}
	u1 := &store.SCIMUser{TenantID: tn, UserID: "u-1", ExternalID: "ext-1", UpdatedAt: b}
	for _, u := range []*store.SCIMUser{u2, u1, {TenantID: "other", UserID: "u-1", ExternalID: "o", UpdatedAt: b}} {
		must(t, "PutSCIMUser "+u.UserID, s.PutSCIMUser(ctx(t), u))
	}
	u1.Deleted, u1.ExternalID, u1.UpdatedAt = true, "ext-1b", b.Add(time.Minute)
	must(t, "PutSCIMUser replace", s.PutSCIMUser(ctx(t), u1))
	gotU, err := s.GetSCIMUser(ctx(t), tn, "u-1")
	must(t, "GetSCIMUser", err)
	checkEqual(t, "scim user", u1, gotU)
	users, err := s.ListSCIMUsers(ctx(t), tn)
	must(t, "ListSCIMUsers", err)
	checkEqual(t, "scim users", []*store.SCIMUser{u1, u2}, users)
}
