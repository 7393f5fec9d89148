package audit

import "github.com/agentid/agentid/internal/store"

// SCIM group event types: a provisioning client created, changed or
// deleted a group (store.SCIMGroup). What a change does to its members
// is recorded on each member (user.updated, change groups).
const (
	GroupCreated = "group.created"
	GroupUpdated = "group.updated"
	GroupDeleted = "group.deleted"
)

// Group changes recorded by group.updated.
const (
	GroupChangeRenamed    = "renamed"     // a new display name; previous_group holds the old one
	GroupChangeExternalID = "external_id" // the provisioning client's own id changed
	GroupChangeMembers    = "members"     // members added or removed (each member has its user.updated)
)

// NewGroupCreated records that a group was created, by its id and name.
func NewGroupCreated(m Meta, groupID, name string) *store.AuditEvent {
	ev := event(m, GroupCreated)
	set(ev.Details, "group_id", groupID)
	set(ev.Details, "group", name)
	return done(ev)
}

// NewGroupUpdated records a change to a group (a GroupChange… value);
// name is its name after the change, previous its name before a rename.
func NewGroupUpdated(m Meta, groupID, name, change, previous string) *store.AuditEvent {
	ev := NewGroupCreated(m, groupID, name)
	ev.Type = GroupUpdated
	set(ev.Details, "change", change)
	set(ev.Details, "previous_group", previous)
	return ev
}

// NewGroupDeleted records that a group was deleted (its members were
// taken out of it first).
func NewGroupDeleted(m Meta, groupID, name string) *store.AuditEvent {
	ev := NewGroupCreated(m, groupID, name)
	ev.Type = GroupDeleted
	return ev
}
