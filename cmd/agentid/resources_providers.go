package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

// newResourcesUpdateCmd links a resource to the downstream providers its
// tools use (the vault): which provider scopes each of its scopes reaches.
func (c *cli) newResourcesUpdateCmd(asJSON *bool) *cobra.Command {
	var (
		provider       string
		providerScopes []string
		remove         []string
		claims         userClaimFlags
	)
	cmd := &cobra.Command{
		Use:   "update URI (--provider ID --provider-scope SCOPE=PROVIDER_SCOPE,... | --remove-provider ID | --user-claim NAME=SOURCE | --remove-user-claim NAME)",
		Short: "Link a resource to the downstream providers its tools use, or choose the user claims its tokens carry",
		Long: `Say which downstream provider a resource's (MCP server's) tools use, and which
provider scopes each of the resource's own scopes may reach: an MCP server
holding an agent's token with scope S may retrieve the person's credential
for at most the provider scopes linked to S. A resource scope without a
--provider-scope reaches none.

--provider ID with its --provider-scope values replaces that provider's link.
For an oauth2 provider give RESOURCE_SCOPE=PROVIDER_SCOPE[,PROVIDER_SCOPE...]
(repeat the flag to add more); for an api_key provider give the resource
scope alone: holding it is what lets the key be retrieved.
--remove-provider ID removes a link.

--user-claim NAME=SOURCE puts a claim about the person in the access tokens
for this resource (and in their introspection), from the user as stored
when each token is issued, so a refresh carries their current groups.
SOURCE is groups or roles (a JSON array), username, email, name, or
attr:KEY (one attribute, agentid users set-attr); a claim the user has no
value for is left out. Nothing is carried unless mapped here. A registered
or protocol claim (iss, sub, aud, exp, iat, jti, scope, client_id, act,
cnf, …) cannot be a user claim. --remove-user-claim NAME stops carrying one.`,
		Example: `  agentid resources update URI --provider calendar \
    --provider-scope notes.read=calendar.read \
    --provider-scope files:delete=calendar.read,calendar.events
  agentid resources update URI --provider weather --provider-scope notes.read
  agentid resources update URI --provider calendar --provider-scope notes.read=calendar.read --remove-provider weather
  agentid resources update URI --user-claim department=attr:department --user-claim groups=groups`,
		Args: exactArgs("URI"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := claims.check(); err != nil {
				return usageErrorf(cmd, "%v", err)
			}
			switch {
			case provider == "" && len(remove) == 0 && claims.empty():
				return usageErrorf(cmd, "nothing to change: give --provider ID with --provider-scope, --remove-provider ID, --user-claim NAME=SOURCE or --remove-user-claim NAME")
			case provider == "" && len(providerScopes) > 0:
				return usageErrorf(cmd, "--provider-scope needs --provider ID")
			case provider != "" && len(providerScopes) == 0:
				return usageErrorf(cmd, "--provider %s needs at least one --provider-scope: a link that reaches no scope lets nothing be retrieved", provider)
			case slices.Contains(remove, provider):
				return usageErrorf(cmd, "--provider %s is also given to --remove-provider", provider)
			}
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				r, err := getResource(ctx, st, args[0])
				if err != nil {
					return err
				}
				var changes []string
				for _, id := range remove {
					i := slices.IndexFunc(r.Providers, func(rp store.ResourceProvider) bool { return rp.ProviderID == id })
					if i < 0 {
						return fmt.Errorf("--remove-provider %s: resource %s is not linked to it", id, r.URI)
					}
					r.Providers = slices.Delete(r.Providers, i, i+1)
					changes = append(changes, "unlinked "+id)
				}
				if provider != "" {
					p, err := getProvider(ctx, st, provider)
					if err != nil {
						return err
					}
					link, err := buildProviderLink(r, p, providerScopes)
					if err != nil {
						return err
					}
					if i := slices.IndexFunc(r.Providers, func(rp store.ResourceProvider) bool { return rp.ProviderID == p.ID }); i >= 0 {
						r.Providers[i] = link
					} else {
						r.Providers = append(r.Providers, link)
					}
					changes = append(changes, "linked "+p.ID)
				}
				claimChanges, err := claims.apply(r)
				if err != nil {
					return err
				}
				ev := resourceEvent(r, func(m audit.Meta, uri string, scopes []string) *store.AuditEvent {
					return audit.NewResourceUserClaimsUpdated(m, uri, scopes, claimChanges)
				}, time.Now())
				if ev.Details == nil {
					ev.Details = map[string]string{}
				}
				if len(changes) > 0 {
					ev.Details["providers"] = strings.Join(changes, ", ")
				}
				if err := st.UpdateResource(ctx, r, ev); err != nil {
					return fmt.Errorf("updating the resource: %w", err)
				}
				if *asJSON {
					return writeJSON(cmd.OutOrStdout(), resourceView(r))
				}
				return printResource(cmd.OutOrStdout(), r)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&provider, "provider", "", "the provider `ID` to link (its --provider-scope values replace its link)")
	f.StringArrayVar(&providerScopes, "provider-scope", nil, "`SCOPE=PROVIDER_SCOPE[,...]`: resource scope SCOPE reaches those provider scopes (api_key: SCOPE alone) (repeatable)")
	f.StringArrayVar(&remove, "remove-provider", nil, "unlink the provider `ID` (repeatable)")
	claims.register(cmd)
	return cmd
}

// buildProviderLink parses --provider-scope values for provider p on
// resource r: every resource scope must be r's, every provider scope one
// p offers (when p lists its scopes).
func buildProviderLink(r *store.Resource, p *store.Provider, vals []string) (store.ResourceProvider, error) {
	link := store.ResourceProvider{ProviderID: p.ID, Scopes: map[string][]string{}}
	for _, v := range vals {
		res, provScopes, hasEq := strings.Cut(v, "=")
		res = strings.TrimSpace(res)
		if !slices.ContainsFunc(r.Scopes, func(s store.Scope) bool { return s.Name == res }) {
			return link, fmt.Errorf("--provider-scope %q: %s is not a scope of resource %s", v, res, r.URI)
		}
		if _, dup := link.Scopes[res]; dup {
			return link, fmt.Errorf("--provider-scope: %s is given twice; list its provider scopes comma-separated", res)
		}
		switch p.Kind {
		case store.ProviderAPIKey:
			if hasEq && strings.TrimSpace(provScopes) != "" {
				return link, fmt.Errorf("--provider-scope %q: %s is an api_key provider, which has no scopes; give the resource scope alone", v, p.ID)
			}
			link.Scopes[res] = []string{}
		default:
			if !hasEq || strings.TrimSpace(provScopes) == "" {
				return link, fmt.Errorf("--provider-scope %q: want RESOURCE_SCOPE=PROVIDER_SCOPE[,PROVIDER_SCOPE...]", v)
			}
			var list []string
			for ps := range strings.SplitSeq(provScopes, ",") {
				ps = strings.TrimSpace(ps)
				toks, oe := oauth.ParseScope(ps)
				if oe != nil || len(toks) != 1 {
					return link, fmt.Errorf("--provider-scope %q: %q is not one scope token", v, ps)
				}
				if len(p.Scopes) > 0 && !slices.Contains(p.Scopes, ps) {
					return link, fmt.Errorf("--provider-scope %q: provider %s offers no scope %s (it offers %s)", v, p.ID, ps, strings.Join(p.Scopes, ", "))
				}
				if !slices.Contains(list, ps) {
					list = append(list, ps)
				}
			}
			link.Scopes[res] = list
		}
	}
	if len(link.Scopes) == 0 {
		return link, errors.New("at least one --provider-scope is required")
	}
	return link, nil
}

// providerLinkRows renders a resource's provider links for a table:
// ("calendar", "notes.read -> calendar.read,calendar.events").
func providerLinkRows(r *store.Resource) [][2]string {
	var rows [][2]string
	for _, rp := range r.Providers {
		for _, s := range slices.Sorted(maps.Keys(rp.Scopes)) {
			reach := strings.Join(rp.Scopes[s], ",")
			if reach == "" {
				reach = "(key)"
			}
			rows = append(rows, [2]string{rp.ProviderID, s + " -> " + reach})
		}
	}
	return rows
}
