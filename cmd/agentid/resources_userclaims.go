package main

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/store"
)

// userClaimFlags are the --user-claim and --remove-user-claim flags of
// resources update: which claims about the person its tokens carry.
type userClaimFlags struct {
	set    []string // NAME=SOURCE
	remove []string // NAME
}

func (f *userClaimFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.set, "user-claim", nil, "`NAME=SOURCE`: tokens for the resource carry claim NAME from SOURCE (groups, roles, username, email, name or attr:KEY) (repeatable)")
	fl.StringArrayVar(&f.remove, "remove-user-claim", nil, "stop carrying the user claim `NAME` (repeatable)")
}

func (f *userClaimFlags) empty() bool { return len(f.set) == 0 && len(f.remove) == 0 }

// check parses every flag before the store is opened: every problem at
// once.
func (f *userClaimFlags) check() error {
	_, err := f.parse()
	return err
}

// parse returns the claims to set, refusing a malformed, reserved or
// twice-given name and an unknown source.
func (f *userClaimFlags) parse() (map[string]string, error) {
	var errs []error
	set := map[string]string{}
	for _, v := range f.set {
		name, src, ok := strings.Cut(v, "=")
		if !ok {
			errs = append(errs, fmt.Errorf("--user-claim %q: want NAME=SOURCE", v))
			continue
		}
		if err := store.CheckUserClaimName(name); err != nil {
			errs = append(errs, fmt.Errorf("--user-claim %q: %w", v, cliStoreErr(err)))
			continue
		}
		if err := store.CheckUserClaimSource(src); err != nil {
			errs = append(errs, fmt.Errorf("--user-claim %q: %w", v, cliStoreErr(err)))
			continue
		}
		if _, dup := set[name]; dup {
			errs = append(errs, fmt.Errorf("--user-claim: %s is given twice", name))
		}
		set[name] = src
	}
	for _, name := range f.remove {
		if _, both := set[name]; both {
			errs = append(errs, fmt.Errorf("--remove-user-claim %s: also given to --user-claim", name))
		}
	}
	return set, errors.Join(errs...)
}

// apply changes r's user claims and returns what changed, for the audit
// event: "NAME=SOURCE" for each claim set, "-NAME" for each removed.
func (f *userClaimFlags) apply(r *store.Resource) ([]string, error) {
	set, err := f.parse()
	if err != nil {
		return nil, err
	}
	var changes []string
	for _, name := range f.remove {
		if _, ok := r.UserClaims[name]; !ok {
			return nil, fmt.Errorf("--remove-user-claim %s: resource %s does not carry it", name, r.URI)
		}
		delete(r.UserClaims, name)
		changes = append(changes, "-"+name)
	}
	if len(set) > 0 && r.UserClaims == nil {
		r.UserClaims = map[string]string{}
	}
	for _, name := range slices.Sorted(maps.Keys(set)) {
		r.UserClaims[name] = set[name]
		changes = append(changes, name+"="+set[name])
	}
	if len(r.UserClaims) > store.MaxResourceUserClaims {
		return nil, fmt.Errorf("resource %s would carry %d user claims, at most %d", r.URI, len(r.UserClaims), store.MaxResourceUserClaims)
	}
	return changes, nil
}

// cliStoreErr is a store validation error as a command reports it: the
// store's text without its package prefix and sentinel.
func cliStoreErr(err error) error {
	msg := strings.TrimPrefix(err.Error(), "store: ")
	msg = strings.TrimSuffix(msg, ": "+store.ErrInvalid.Error())
	return errors.New(msg)
}

// userClaimsText shows a resource's user claims, "NAME=SOURCE" in name
// order.
func userClaimsText(m map[string]string) string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(m)) {
		out = append(out, name+"="+m[name])
	}
	return strings.Join(out, " ")
}
