package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/store"
)

// The commands that change what policy and tokens know of a person: their
// roles, groups and attributes. Each writes one user.updated event naming
// what changed (attribute keys, never values). A change is read by the
// next decision: policy re-reads the user at every issuance, refreshes
// included, so a removed group takes the scopes it allowed away at the
// next refresh; access tokens already issued live out their short
// lifetime.

// newUsersAccessCmds returns set-attr, unset-attr, add-role, remove-role,
// add-group and remove-group.
func (c *cli) newUsersAccessCmds(asJSON *bool) []*cobra.Command {
	return []*cobra.Command{
		c.newUsersSetAttrCmd(asJSON),
		c.newUsersUnsetAttrCmd(asJSON),
		c.newUsersMemberCmd(asJSON, audit.ChangeRoles, true),
		c.newUsersMemberCmd(asJSON, audit.ChangeRoles, false),
		c.newUsersMemberCmd(asJSON, audit.ChangeGroups, true),
		c.newUsersMemberCmd(asJSON, audit.ChangeGroups, false),
	}
}

func (c *cli) newUsersSetAttrCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "set-attr USERNAME KEY=VALUE...",
		Short: "Set attributes of a user, which policies read and tokens may carry",
		Long: `Set attributes of a user. Policies read them as the user entity's tags
(context.user.getTag("employment")); a resource may put one in its access
tokens (agentid resources update URI --user-claim NAME=attr:KEY).

A KEY is 1 to 64 letters, digits, '_', '-' or '.', starting with a letter; a
VALUE up to 1024 bytes without control characters (it may be empty). A user
holds at most 64 attributes. The change is audited (user.updated, change
attributes, with the keys set; never the values).`,
		Example: `  agentid users set-attr alice employment=contractor department=R&D`,
		Args:    minArgs("USERNAME", "KEY=VALUE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			set := map[string]string{}
			var errs []error
			for _, a := range args[1:] {
				k, v, ok := strings.Cut(a, "=")
				if !ok {
					errs = append(errs, fmt.Errorf("%q: want KEY=VALUE", a))
					continue
				}
				if _, dup := set[k]; dup {
					errs = append(errs, fmt.Errorf("%s is given twice", k))
					continue
				}
				probe := &store.User{Attributes: map[string]string{k: v}}
				if err := store.CheckUserAccess(probe); err != nil {
					errs = append(errs, cliStoreErr(err))
					continue
				}
				set[k] = v
			}
			if err := errors.Join(errs...); err != nil {
				return usageErrorf(cmd, "%v", err)
			}
			return c.changeUser(cmd, *asJSON, args[0], func(u *store.User) (string, []string, []string, error) {
				var changed []string
				for _, k := range slices.Sorted(maps.Keys(set)) {
					if old, ok := u.Attributes[k]; ok && old == set[k] {
						continue
					}
					if u.Attributes == nil {
						u.Attributes = map[string]string{}
					}
					u.Attributes[k] = set[k]
					changed = append(changed, k)
				}
				return audit.ChangeAttributes, changed, nil, nil
			})
		},
	}
}

func (c *cli) newUsersUnsetAttrCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "unset-attr USERNAME KEY...",
		Short: "Remove attributes of a user",
		Long: `Remove attributes of a user. A key the user does not have is an error, so a
typo does not pass silently. Audited as user.updated, change attributes.`,
		Example: `  agentid users unset-attr alice employment`,
		Args:    minArgs("USERNAME", "KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			keys := uniqueArgs(args[1:])
			return c.changeUser(cmd, *asJSON, args[0], func(u *store.User) (string, []string, []string, error) {
				for _, k := range keys {
					if _, ok := u.Attributes[k]; !ok {
						return "", nil, nil, fmt.Errorf("user %s has no attribute %q", u.Username, k)
					}
					delete(u.Attributes, k)
				}
				return audit.ChangeAttributes, nil, keys, nil
			})
		},
	}
}

// newUsersMemberCmd builds add-role, remove-role, add-group or
// remove-group (kind ChangeRoles or ChangeGroups).
func (c *cli) newUsersMemberCmd(asJSON *bool, kind string, add bool) *cobra.Command {
	noun := strings.TrimSuffix(kind, "s") // role, group
	verb := "remove"
	short := fmt.Sprintf("Take a %s away from a user", noun)
	if add {
		verb = "add"
		short = fmt.Sprintf("Give a user a %s, which policies read (context.user.%s)", noun, kind)
	}
	arg := strings.ToUpper(noun)
	return &cobra.Command{
		Use:   fmt.Sprintf("%s-%s USERNAME %s", verb, noun, arg),
		Short: short,
		Long: short + `.

A name is up to 256 bytes without control characters; a user holds at most
256. Policies see the change at the next decision: a refresh re-evaluates
policy with the user's current ` + kind + `. Audited as user.updated, change ` + kind + `.`,
		Example: fmt.Sprintf("  agentid users %s-%s alice %s", verb, noun, map[string]string{"role": "release-manager", "group": "eng-oncall"}[noun]),
		Args:    exactArgs("USERNAME", arg),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[1]
			if err := store.CheckRoleOrGroup(noun, name); err != nil {
				return usageErrorf(cmd, "%v", cliStoreErr(err))
			}
			return c.changeUser(cmd, *asJSON, args[0], func(u *store.User) (string, []string, []string, error) {
				list := &u.Roles
				if kind == audit.ChangeGroups {
					list = &u.Groups
				}
				has := slices.Contains(*list, name)
				switch {
				case add && has:
					return kind, nil, nil, nil
				case add:
					*list = append(*list, name)
					return kind, []string{name}, nil, nil
				case !has:
					return "", nil, nil, fmt.Errorf("user %s has no %s %q", u.Username, noun, name)
				}
				*list = slices.DeleteFunc(*list, func(s string) bool { return s == name })
				return kind, nil, []string{name}, nil
			})
		},
	}
}

// changeUser reads the user, lets edit change it (returning the change kind
// and the names added and removed) and stores it with its audit event; an
// edit that changed nothing writes nothing.
func (c *cli) changeUser(cmd *cobra.Command, asJSON bool, username string, edit func(u *store.User) (kind string, added, removed []string, err error)) error {
	return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
		u, err := c.getUser(ctx, st, username)
		if err != nil {
			return err
		}
		kind, added, removed, err := edit(u)
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if len(added) == 0 && len(removed) == 0 {
			if asJSON {
				return writeJSON(out, userView(u))
			}
			_, err := fmt.Fprintf(out, "user %s unchanged\n", u.Username)
			return err
		}
		u.UpdatedAt = time.Now()
		ev := audit.NewUserAccessUpdated(audit.Meta{TenantID: u.TenantID, Time: u.UpdatedAt}, u.ID, kind, added, removed)
		if err := st.UpdateUser(ctx, u, ev); err != nil {
			if errors.Is(err, store.ErrInvalid) {
				return cliStoreErr(err)
			}
			return fmt.Errorf("updating the user: %w", err)
		}
		if asJSON {
			return writeJSON(out, userView(u))
		}
		return printUserAccess(out, u)
	})
}

// uniqueArgs is args without repeats, in order.
func uniqueArgs(args []string) []string {
	var out []string
	for _, a := range args {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func (c *cli) newUsersShowCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "show USERNAME",
		Short: "Show a user: profile, status, roles, groups and attributes",
		Args:  exactArgs("USERNAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				u, err := c.getUser(ctx, st, args[0])
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					return writeJSON(out, userView(u))
				}
				t := newTable(out)
				t.row("username", u.Username)
				t.row("id", u.ID)
				t.row("name", u.Name)
				t.row("email", emailText(u))
				t.row("status", status(u.Disabled))
				t.row("created", timeText(u.CreatedAt))
				t.row("updated", timeText(u.UpdatedAt))
				if err := t.flush(); err != nil {
					return err
				}
				fmt.Fprintln(out)
				return printUserAccess(out, u)
			})
		},
	}
}

// printUserAccess writes a user's roles, groups and attributes: one line
// each for roles and groups, then a table of attributes.
func printUserAccess(w io.Writer, u *store.User) error {
	t := newTable(w)
	t.row("user", u.Username)
	t.row("roles", nameList(u.Roles))
	t.row("groups", nameList(u.Groups))
	if err := t.flush(); err != nil {
		return err
	}
	if len(u.Attributes) == 0 {
		_, err := fmt.Fprintln(w, "attributes  (none)")
		return err
	}
	fmt.Fprintln(w)
	t = newTable(w, "ATTRIBUTE", "VALUE")
	for _, k := range slices.Sorted(maps.Keys(u.Attributes)) {
		t.row(k, u.Attributes[k])
	}
	return t.flush()
}

// nameList shows role or group names, quoting those with spaces.
func nameList(l []string) string {
	if len(l) == 0 {
		return "(none)"
	}
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = s
		if strings.ContainsAny(s, " \t\"") {
			q[i] = fmt.Sprintf("%q", s)
		}
	}
	return strings.Join(q, " ")
}
