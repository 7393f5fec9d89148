package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/clients"
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
	maxUsernameLen         = store.MaxUsernameLen
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
	cmd.PersistentFlags().StringVar(&c.userTenant, "tenant", store.DefaultTenant,
		"the `TENANT` whose people to manage (a connector's tenant; local users with a password are the default tenant's)")
	cmd.AddCommand(
		c.newUsersAddCmd(&asJSON),
		c.newUsersUpdateCmd(&asJSON),
		c.newUsersListCmd(&asJSON),
		c.newUsersSetPasswordCmd(&asJSON),
		c.newUsersSetDisabledCmd(&asJSON, true),
		c.newUsersSetDisabledCmd(&asJSON, false),
		c.newUsersDeprovisionCmd(&asJSON),
		c.newUsersShowCmd(&asJSON),
	)
	cmd.AddCommand(c.newUsersAccessCmds(&asJSON)...)
	return cmd
}

func (c *cli) newUsersAddCmd(asJSON *bool) *cobra.Command {
	var fromStdin bool
	var prof profileFlags
	cmd := &cobra.Command{
		Use:   "add USERNAME [--password-stdin] [--name NAME] [--email ADDRESS [--email-verified]]",
		Short: "Add a user; prints a generated password once unless --password-stdin",
		Long: `Add a user who logs in with a password; prints a generated password once
unless --password-stdin.

--name and --email are the person's profile: the hub hands them to OpenID
Connect relying parties (the profile and email scopes), and a trusted issuer
whose user claim is email finds the user by address. --email-verified says you
vouch for the address; relying parties see email_verified true only then.`,
		Example: `  agentid users add bob --name "Bob Kahn" --email bob@example.com --email-verified`,
		Args:    exactArgs("USERNAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			username := args[0]
			if c.tenantOfUsers() != store.DefaultTenant {
				return fmt.Errorf("users with a password belong to the default tenant; tenant %s's people come through its connectors", c.tenantOfUsers())
			}
			if err := validateUsername(username); err != nil {
				return err
			}
			if err := prof.check(cmd); err != nil {
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
				prof.apply(cmd, u)
				if err := emailFree(ctx, st, u); err != nil {
					return err
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
	prof.register(cmd)
	return cmd
}

func (c *cli) newUsersUpdateCmd(asJSON *bool) *cobra.Command {
	var prof profileFlags
	cmd := &cobra.Command{
		Use:   "update USERNAME [--name NAME] [--email ADDRESS] [--email-verified[=false]]",
		Short: "Change a user's name, email address or its verification",
		Long: `Change a user's profile: --name, --email, --email-verified. Flags not given keep
their value; an empty value clears it. A new address is unverified unless
--email-verified is given with it. The change is audited (user.updated,
change profile; the event does not repeat the values).`,
		Example: `  agentid users update USERNAME --email alice@wonderland.example --email-verified
  agentid users update USERNAME --name ""`,
		Args: exactArgs("USERNAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := prof.check(cmd); err != nil {
				return err
			}
			if !prof.any(cmd) {
				return usageErrorf(cmd, "nothing to change: give --name, --email or --email-verified")
			}
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				u, err := c.getUser(ctx, st, args[0])
				if err != nil {
					return err
				}
				before := *u
				prof.apply(cmd, u)
				if u.Email == "" && u.EmailVerified {
					return usageErrorf(cmd, "--email-verified: user %s has no email address (give --email)", u.Username)
				}
				out := cmd.OutOrStdout()
				if u.Name == before.Name && u.Email == before.Email && u.EmailVerified == before.EmailVerified {
					if *asJSON {
						return writeJSON(out, userView(u))
					}
					fmt.Fprintf(out, "user %s unchanged\n", u.Username)
					return nil
				}
				if err := emailFree(ctx, st, u); err != nil {
					return err
				}
				u.UpdatedAt = time.Now()
				if err := st.UpdateUser(ctx, u, userUpdated(u, "profile")); err != nil {
					return fmt.Errorf("updating the user: %w", err)
				}
				if *asJSON {
					return writeJSON(out, userView(u))
				}
				t := newTable(out)
				t.row("username", u.Username)
				t.row("name", u.Name)
				t.row("email", emailText(u))
				return t.flush()
			})
		},
	}
	prof.register(cmd)
	return cmd
}

// Profile bounds: a name as people write theirs, an address as RFC 5321
// §4.5.3.1 allows (a path of at most 256 octets, its brackets included).
const (
	maxProfileNameLen = 200
	maxEmailLen       = 254
)

// profileFlags are the profile flags of users add and update.
type profileFlags struct {
	name, email string
	verified    bool
}

func (p *profileFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&p.name, "name", "", "the person's full name (OpenID Connect name claim)")
	f.StringVar(&p.email, "email", "", "the person's email `address`")
	f.BoolVar(&p.verified, "email-verified", false, "you vouch for the email address")
}

// any reports whether a profile flag was given.
func (p *profileFlags) any(cmd *cobra.Command) bool {
	f := cmd.Flags()
	return f.Changed("name") || f.Changed("email") || f.Changed("email-verified")
}

// check refuses a name or address the profile cannot hold.
func (p *profileFlags) check(cmd *cobra.Command) error {
	if len(p.name) > maxProfileNameLen {
		return usageErrorf(cmd, "--name must be at most %d bytes", maxProfileNameLen)
	}
	for _, r := range p.name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return usageErrorf(cmd, "--name must not contain control characters")
		}
	}
	if p.name != strings.TrimSpace(p.name) {
		return usageErrorf(cmd, "--name must not start or end with spaces")
	}
	if p.email != "" {
		if err := validateEmail(p.email); err != nil {
			return usageErrorf(cmd, "%v", err)
		}
	}
	if cmd.Flags().Changed("email") && p.email == "" && p.verified {
		return usageErrorf(cmd, "--email-verified needs an email address")
	}
	if cmd.Name() == "add" && p.verified && p.email == "" {
		return usageErrorf(cmd, "--email-verified needs --email")
	}
	return nil
}

// apply sets the profile flags given on cmd on u. A changed address is
// unverified unless --email-verified says otherwise.
func (p *profileFlags) apply(cmd *cobra.Command, u *store.User) {
	f := cmd.Flags()
	if f.Changed("name") {
		u.Name = p.name
	}
	if f.Changed("email") && p.email != u.Email {
		u.Email, u.EmailVerified = p.email, false
	}
	if f.Changed("email-verified") {
		u.EmailVerified = p.verified
	}
}

// validateEmail accepts a plain address (local@domain, no display name or
// angle brackets) of at most 254 bytes.
func validateEmail(s string) error {
	if len(s) > maxEmailLen {
		return fmt.Errorf("--email must be at most %d bytes", maxEmailLen)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return fmt.Errorf("--email %q is not a plain email address (local@domain)", s)
	}
	local, domain, _ := strings.Cut(s, "@")
	if local == "" || !strings.Contains(domain, ".") && domain != "localhost" {
		return fmt.Errorf("--email %q is not a plain email address (local@domain)", s)
	}
	return nil
}

// emailFree refuses an address another user of the tenant has (compared
// without regard to case): a trusted issuer whose user claim is email must
// find one user by it.
func emailFree(ctx context.Context, st store.Store, u *store.User) error {
	if u.Email == "" {
		return nil
	}
	us, err := st.ListUsers(ctx, u.TenantID)
	if err != nil {
		return err
	}
	for _, o := range us {
		if o.ID != u.ID && strings.EqualFold(o.Email, u.Email) {
			return fmt.Errorf("email address %s is already user %s's", u.Email, o.Username)
		}
	}
	return nil
}

// emailText shows an address and whether it is verified.
func emailText(u *store.User) string {
	switch {
	case u.Email == "":
		return ""
	case u.EmailVerified:
		return u.Email + " (verified)"
	}
	return u.Email + " (unverified)"
}

func (c *cli) newUsersListCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				us, err := st.ListUsers(ctx, c.tenantOfUsers())
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
				t := newTable(out, "USERNAME", "ID", "STATUS", "CREATED", "UPDATED", "EMAIL")
				for _, u := range us {
					t.row(u.Username, u.ID, status(u.Disabled), timeText(u.CreatedAt), timeText(u.UpdatedAt), emailText(u))
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
				u, err := c.getUser(ctx, st, args[0])
				if err != nil {
					return err
				}
				if u.ConnectorID != "" {
					return fmt.Errorf("user %s signs in through connector %s and has no password here; disable the user to keep them out", u.Username, u.ConnectorID)
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
				u, err := c.getUser(ctx, st, args[0])
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

func (c *cli) getUser(ctx context.Context, st store.Store, username string) (*store.User, error) {
	u, err := st.GetUserByUsername(ctx, c.tenantOfUsers(), username)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no user %q", username)
	}
	return u, err
}

// validateUsername is store.CheckUsername.
func validateUsername(s string) error { return store.CheckUsername(s) }

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
	Password string `json:"password,omitempty"`
	Disabled bool   `json:"disabled"`
	// The profile: name and email omitted when unknown.
	Name          string     `json:"name,omitempty"`
	Email         string     `json:"email,omitempty"`
	EmailVerified bool       `json:"email_verified"`
	CreatedAt     *time.Time `json:"created_at,omitempty"`
	UpdatedAt     *time.Time `json:"updated_at,omitempty"`
	// What policy and tokens know of the person.
	Roles      []string          `json:"roles"`
	Groups     []string          `json:"groups"`
	Attributes map[string]string `json:"attributes"`
}

func userView(u *store.User) *userJSON {
	v := &userJSON{ID: u.ID, Username: u.Username, Name: u.Name, Email: u.Email, EmailVerified: u.EmailVerified,
		Disabled: u.Disabled, CreatedAt: optTime(u.CreatedAt), UpdatedAt: optTime(u.UpdatedAt),
		Roles: orEmpty(u.Roles), Groups: orEmpty(u.Groups), Attributes: u.Attributes}
	if v.Attributes == nil {
		v.Attributes = map[string]string{}
	}
	return v
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
	if u.Name != "" {
		t.row("name", u.Name)
	}
	if u.Email != "" {
		t.row("email", emailText(u))
	}
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

func (c *cli) newUsersDeprovisionCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "deprovision USERNAME",
		Short: "Disable a user and end everything that acts for them: sessions, tokens, consents, vault connections",
		Long: `Deprovision a person: the user is disabled, their sessions, pending
authorization codes and every token issued for them (to any agent) end, every
consent they gave any agent is revoked, and every vault connection they own is
revoked at its provider and deleted (reason user_deprovisioned). Each step
writes its audit event. Running it again completes an interrupted run.`,
		Args: exactArgs("USERNAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, cfg *config.Config, st store.Store) error {
				u, err := c.getUser(ctx, st, args[0])
				if err != nil {
					return err
				}
				// The vault is opened only when there is a connection to
				// revoke: a hub without a keyring has none.
				var rv clients.ConnectionRevoker
				owned, err := st.ListConnections(ctx, store.ConnectionFilter{TenantID: u.TenantID, OwnerKind: store.OwnerUser, OwnerID: u.ID, Limit: 1})
				if err != nil {
					return fmt.Errorf("listing the user's connections: %w", err)
				}
				if len(owned) > 0 {
					v, err := newVault(cmd, cfg, st)
					if err != nil {
						return fmt.Errorf("the user owns vault connections: %w", err)
					}
					rv = v
				}
				res, err := clients.DeprovisionUser(ctx, st, rv, adminMeta(time.Time{}), u.TenantID, u.ID, time.Now())
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					return writeJSON(out, struct {
						Username    string   `json:"username"`
						Changed     bool     `json:"changed"`
						Disabled    bool     `json:"disabled_now"`
						Consents    int      `json:"consents_revoked"`
						Connections []string `json:"connections_revoked"`
					}{u.Username, res.Changed(), res.Disabled, res.Consents, strs(res.Connections)})
				}
				if !res.Changed() {
					_, err = fmt.Fprintf(out, "user %s was already deprovisioned; sessions and tokens checked again\n", u.Username)
					return err
				}
				_, err = fmt.Fprintf(out, "user %s deprovisioned: disabled, sessions and tokens ended, %d consent(s) and %d connection(s) revoked\n",
					u.Username, res.Consents, len(res.Connections))
				return err
			})
		},
	}
}

// tenantOfUsers is the users commands' --tenant (the default tenant when
// the command was not built through newUsersCmd).
func (c *cli) tenantOfUsers() string {
	if c.userTenant == "" {
		return store.DefaultTenant
	}
	return c.userTenant
}
