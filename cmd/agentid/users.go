package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/password"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// Password bounds for passwords an administrator supplies: the rule is
// password.Check's, shared with every other place a password is set.
const (
	minPasswordLen = password.MinLength
	maxPasswordLen = password.MaxLength
	// generatedPasswordBytes of randomness: 144 bits, 24 characters.
	generatedPasswordBytes = 18
	maxUsernameLen         = 64
)

func (c *cli) newUsersCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "users",
		Short: "Manage local users who log in with a password",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	addJSONFlag(cmd, &asJSON)
	cmd.AddCommand(
		c.newUsersAddCmd(&asJSON),
		c.newUsersListCmd(&asJSON),
		c.newUsersSetPasswordCmd(&asJSON),
		c.newUsersSetDisabledCmd(&asJSON, true),
		c.newUsersSetDisabledCmd(&asJSON, false),
	)
	return cmd
}

func (c *cli) newUsersAddCmd(asJSON *bool) *cobra.Command {
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "add USERNAME [--password-stdin]",
		Short: "Add a user; prints a generated password once unless --password-stdin",
		Args:  exactArgs("USERNAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			username := args[0]
			if err := validateUsername(username); err != nil {
				return err
			}
			pw, generated, err := obtainPassword(cmd.InOrStdin(), fromStdin, args[0])
			if err != nil {
				return err
			}
			hash, err := password.Hash(pw)
			if err != nil {
				return fmt.Errorf("hashing the password: %w", err)
			}
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				now := time.Now()
				u := &store.User{
					TenantID:     store.DefaultTenant,
					ID:           token.NewID(nil),
					Username:     username,
					PasswordHash: hash,
					CreatedAt:    now,
					UpdatedAt:    now,
				}
				// The event names the user by id only: never a password or hash.
				if err := st.CreateUser(ctx, u, audit.NewUserCreated(audit.Meta{Time: now}, u.ID)); err != nil {
					if errors.Is(err, store.ErrConflict) {
						return fmt.Errorf("user %q already exists", username)
					}
					return fmt.Errorf("storing the user: %w", err)
				}
				return printUserWithPassword(cmd, *asJSON, u, generated, pw)
			})
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of stdin instead of generating one")
	return cmd
}

func (c *cli) newUsersListCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				us, err := st.ListUsers(ctx, store.DefaultTenant)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					vs := make([]*userJSON, 0, len(us))
					for _, u := range us {
						vs = append(vs, userView(u))
					}
					return writeJSON(out, vs)
				}
				t := newTable(out, "USERNAME", "ID", "STATUS", "CREATED", "UPDATED")
				for _, u := range us {
					t.row(u.Username, u.ID, status(u.Disabled), timeText(u.CreatedAt), timeText(u.UpdatedAt))
				}
				return t.flush()
			})
		},
	}
}

func (c *cli) newUsersSetPasswordCmd(asJSON *bool) *cobra.Command {
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "set-password USERNAME [--password-stdin]",
		Short: "Set a user's password; prints a generated one once unless --password-stdin",
		Args:  exactArgs("USERNAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, generated, err := obtainPassword(cmd.InOrStdin(), fromStdin, args[0])
			if err != nil {
				return err
			}
			hash, err := password.Hash(pw)
			if err != nil {
				return fmt.Errorf("hashing the password: %w", err)
			}
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				u, err := getUser(ctx, st, args[0])
				if err != nil {
					return err
				}
				u.PasswordHash, u.UpdatedAt = hash, time.Now()
				if err := st.UpdateUser(ctx, u, userUpdated(u, "password")); err != nil {
					return fmt.Errorf("updating the user: %w", err)
				}
				if err := revokeUserAccess(ctx, st, u, "password"); err != nil {
					return err
				}
				return printUserWithPassword(cmd, *asJSON, u, generated, pw)
			})
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of stdin instead of generating one")
	return cmd
}

// newUsersSetDisabledCmd builds `users disable` (disable true) or
// `users enable`. A disabled user cannot log in.
func (c *cli) newUsersSetDisabledCmd(asJSON *bool, disable bool) *cobra.Command {
	verb, done := "enable", "enabled"
	short := "Enable a disabled user again"
	if disable {
		verb, done = "disable", "disabled"
		short = "Disable a user: they can no longer log in; their sessions and tokens end"
	}
	return &cobra.Command{
		Use:   verb + " USERNAME",
		Short: short,
		Args:  exactArgs("USERNAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				u, err := getUser(ctx, st, args[0])
				if err != nil {
					return err
				}
				if u.Disabled != disable {
					u.Disabled, u.UpdatedAt = disable, time.Now()
					if err := st.UpdateUser(ctx, u, userUpdated(u, done)); err != nil {
						return fmt.Errorf("updating the user: %w", err)
					}
				}
				if disable {
					if err := revokeUserAccess(ctx, st, u, "disabled"); err != nil {
						return err
					}
				}
				if *asJSON {
					return writeJSON(cmd.OutOrStdout(), userView(u))
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "user %s %s\n", u.Username, done)
				return err
			})
		},
	}
}

// userUpdated is the audit event for a change ("password", "disabled" or
// "enabled") to u, stamped with u.UpdatedAt. It carries no password or hash.
func userUpdated(u *store.User, change string) *store.AuditEvent {
	return audit.NewUserUpdated(audit.Meta{TenantID: u.TenantID, Time: u.UpdatedAt}, u.ID, change)
}

// revokeUserAccess ends the user's sessions, pending codes and tokens after
// a password change or a disable (reason), so that nothing resting on the
// old password or on the user's standing outlives the change.
func revokeUserAccess(ctx context.Context, st store.Store, u *store.User, reason string) error {
	now := time.Now()
	ev := audit.NewUserAccessRevoked(audit.Meta{TenantID: u.TenantID, Time: now}, u.ID, reason)
	if err := st.RevokeUserAccess(ctx, u.TenantID, u.ID, now, ev); err != nil {
		return fmt.Errorf("ending the user's sessions and tokens: %w", err)
	}
	return nil
}

func getUser(ctx context.Context, st store.Store, username string) (*store.User, error) {
	u, err := st.GetUserByUsername(ctx, store.DefaultTenant, username)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no user %q", username)
	}
	return u, err
}

// validateUsername accepts 1–64 letters, digits and . _ - @ +: enough for
// names and e-mail addresses, nothing that confuses a terminal or a page.
func validateUsername(s string) error {
	if len(s) == 0 || len(s) > maxUsernameLen {
		return fmt.Errorf("username must be 1 to %d characters", maxUsernameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-@+", c) >= 0) {
			return fmt.Errorf("username %q may contain only letters, digits and . _ - @ +", s)
		}
	}
	return nil
}

// obtainPassword reads the password from stdin (fromStdin) or generates
// one; generated reports which.
func obtainPassword(stdin io.Reader, fromStdin bool, username string) (pw string, generated bool, err error) {
	if !fromStdin {
		pw, err := generatePassword(rand.Reader)
		return pw, true, err
	}
	pw, err = readPassword(stdin, username, "agentid")
	return pw, false, err
}

// readPassword takes the first line of r (without its line ending) as the
// password. Errors describe the password's shape, never its content.
func readPassword(r io.Reader, username ...string) (string, error) {
	if r == nil {
		return "", errors.New("--password-stdin: no standard input")
	}
	br := bufio.NewReaderSize(io.LimitReader(r, maxPasswordLen+2), maxPasswordLen+2)
	line, err := br.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("--password-stdin: reading stdin: %w", err)
	}
	hadNewline := strings.HasSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	switch {
	case line == "" && !hadNewline && err != nil:
		return "", errors.New("--password-stdin: stdin is empty")
	}
	if err := password.Check(line, username...); err != nil {
		return "", fmt.Errorf("--password-stdin: %w", err)
	}
	return line, nil
}

// generatePassword returns 144 random bits as 24 base64url characters.
func generatePassword(r io.Reader) (string, error) {
	b := make([]byte, generatedPasswordBytes)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("generating a password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// userJSON is a user as `--json` shows it: never a password hash.
type userJSON struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	// Password appears once, when agentid generated it.
	Password  string     `json:"password,omitempty"`
	Disabled  bool       `json:"disabled"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

func userView(u *store.User) *userJSON {
	return &userJSON{ID: u.ID, Username: u.Username, Disabled: u.Disabled, CreatedAt: optTime(u.CreatedAt), UpdatedAt: optTime(u.UpdatedAt)}
}

// printUserWithPassword reports an added user or a changed password,
// showing the password only when agentid generated it.
func printUserWithPassword(cmd *cobra.Command, asJSON bool, u *store.User, generated bool, pw string) error {
	out := cmd.OutOrStdout()
	if asJSON {
		v := userView(u)
		if generated {
			v.Password = pw
		}
		return writeJSON(out, v)
	}
	t := newTable(out)
	t.row("username", u.Username)
	t.row("id", u.ID)
	if generated {
		t.row("password", pw)
	}
	t.row("status", status(u.Disabled))
	if err := t.flush(); err != nil {
		return err
	}
	if generated {
		fmt.Fprintln(cmd.ErrOrStderr(), "The password is shown only this once; agentid keeps only its argon2id hash.")
	}
	return nil
}
