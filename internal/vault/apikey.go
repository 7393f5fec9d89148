package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// maxKeyLen bounds an API key (a header value).
const maxKeyLen = 4096

// checkKey refuses keys that cannot travel in a header or query
// parameter unchanged. The error never repeats the key.
func checkKey(key string) error {
	switch {
	case key == "":
		return errors.New("vault: the API key is empty")
	case len(key) > maxKeyLen:
		return fmt.Errorf("vault: the API key is longer than %d bytes", maxKeyLen)
	case !utf8.ValidString(key):
		return errors.New("vault: the API key is not valid text")
	case strings.TrimSpace(key) != key:
		return errors.New("vault: the API key starts or ends with white space")
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			// A header value must not carry control characters
			// (RFC 9110 §5.5); they would also split a header.
			return errors.New("vault: the API key contains control characters")
		}
	}
	return nil
}

// SaveAPIKey stores key as a new connection of owner to API-key provider p.
// label "" names the connection after the provider.
func (v *Vault) SaveAPIKey(ctx context.Context, m audit.Meta, p *store.Provider, owner Owner, label, key string) (*store.Connection, error) {
	if p.Kind != store.ProviderAPIKey {
		return nil, fmt.Errorf("vault: provider %s does not take API keys", p.ID)
	}
	if p.Disabled {
		return nil, fmt.Errorf("vault: provider %s is disabled", p.ID)
	}
	if err := checkOwner(p.TenantID, owner); err != nil {
		return nil, err
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if label = cleanLabel(label); label == "" {
		label = cleanLabel(p.Name)
		if label == "" {
			label = p.ID
		}
	}
	id, err := v.randomToken(20)
	if err != nil {
		return nil, err
	}
	now := v.cfg.Now()
	c := &store.Connection{
		TenantID:        p.TenantID,
		ID:              "conn_" + id,
		ProviderID:      p.ID,
		OwnerKind:       owner.Kind,
		OwnerID:         owner.ID,
		Label:           label,
		Status:          store.ConnectionActive,
		LastRefreshedAt: now,
		CreatedAt:       now,
		UpdatedAt:       now,
	}
	s := &secret{APIKey: key}
	defer s.clear()
	if err := v.sealNew(c, s); err != nil {
		return nil, err
	}
	ev := audit.NewConnectionCreated(v.meta(m, c.TenantID), connFields(c, ""))
	if err := v.cfg.Store.CreateConnection(ctx, c, ev); err != nil {
		return nil, fmt.Errorf("vault: storing connection: %w", err)
	}
	return c, nil
}

// RotateAPIKey replaces the key of an API-key connection; the old key is
// still retrievable for overlap (zero: the provider's KeyOverlap, else
// Config.KeyOverlap), then destroyed (RefreshDue). A key rotated out
// earlier and still in its overlap is replaced by the one rotated out now.
func (v *Vault) RotateAPIKey(ctx context.Context, m audit.Meta, tenantID, connectionID, key string, overlap time.Duration) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if overlap < 0 {
		return errors.New("vault: negative key overlap")
	}
	c, err := v.cfg.Store.GetConnection(ctx, tenantID, connectionID)
	if err != nil {
		return fmt.Errorf("vault: reading connection: %w", err)
	}
	p, err := v.cfg.Store.GetProvider(ctx, tenantID, c.ProviderID)
	if err != nil {
		return fmt.Errorf("vault: reading provider: %w", err)
	}
	if p.Kind != store.ProviderAPIKey {
		return fmt.Errorf("vault: connection %s is not an API-key connection", c.ID)
	}
	if overlap == 0 {
		overlap = p.KeyOverlap
	}
	if overlap == 0 {
		overlap = v.cfg.KeyOverlap
	}
	now := v.cfg.Now()
	until := now.Add(overlap)
	f := connFields(c, "")
	f.PreviousUntil = until
	ev := audit.NewConnectionRotated(v.meta(m, tenantID), f)
	_, err = v.cfg.Store.UpdateConnection(ctx, tenantID, connectionID, func(cur *store.Connection) error {
		dk, err := v.openDataKey(cur)
		if err != nil {
			return err
		}
		defer clear(dk)
		old, err := openSecret(dk, purposeSecret, cur, cur.Secret)
		if err != nil {
			return err
		}
		defer old.clear()
		ns := &secret{APIKey: key}
		defer ns.clear()
		if cur.Secret, err = v.sealSecret(dk, purposeSecret, cur, ns); err != nil {
			return err
		}
		if cur.PreviousSecret, err = v.sealSecret(dk, purposePreviousSecret, cur, old); err != nil {
			return err
		}
		cur.PreviousUntil = until
		cur.Status = store.ConnectionActive
		cur.LastRefreshedAt = now
		cur.UpdatedAt = now
		return nil
	}, ev)
	if err != nil {
		return fmt.Errorf("vault: rotating key: %w", err)
	}
	return nil
}
