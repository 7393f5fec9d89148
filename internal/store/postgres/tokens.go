package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/agentid/agentid/internal/store"
)

const authCodeCols = `hash, tenant_id, grant_id, client_id, user_id, redirect_uri, scopes, resource,
	code_challenge, code_challenge_method, nonce, auth_time, created_at, expires_at, consumed_at`

func scanAuthCode(row pgx.Row) (*store.AuthCode, error) {
	var c store.AuthCode
	var consumed *time.Time
	if err := row.Scan(&c.Hash, &c.TenantID, &c.GrantID, &c.ClientID, &c.UserID, &c.RedirectURI,
		&c.Scopes, &c.Resource, &c.CodeChallenge, &c.CodeChallengeMethod, &c.Nonce, &c.AuthTime,
		&c.CreatedAt, &c.ExpiresAt, &consumed); err != nil {
		return nil, err
	}
	c.AuthTime, c.CreatedAt, c.ExpiresAt = utc(c.AuthTime), utc(c.CreatedAt), utc(c.ExpiresAt)
	c.ConsumedAt = fromNull(consumed)
	return &c, nil
}

// CreateAuthCode stores a new authorization code and ev.
func (s *Store) CreateAuthCode(ctx context.Context, c *store.AuthCode, ev *store.AuditEvent) error {
	return mapErr("create auth code", s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO auth_codes (`+authCodeCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
			c.Hash, c.TenantID, c.GrantID, c.ClientID, c.UserID, c.RedirectURI, c.Scopes, c.Resource,
			c.CodeChallenge, c.CodeChallengeMethod, c.Nonce, c.AuthTime, c.CreatedAt, c.ExpiresAt,
			nullTime(c.ConsumedAt)); err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// ConsumeAuthCode marks the code consumed at now and returns it. The
// conditional UPDATE makes consumption exactly-once across replicas: a
// concurrent second UPDATE waits for the first to commit, then finds
// consumed_at set and matches nothing.
//
// A replayed code returns the stored code with store.ErrAlreadyUsed after
// revoking, in the same transaction, every token of its grant and writing ev
// (RFC 6749 §4.1.2: the authorization server SHOULD revoke all tokens
// previously issued based on that code). Replay is checked before expiry so
// that a late replay still revokes. An unknown or expired code is
// store.ErrNotFound and writes nothing. ev (nil: none) is written, completed
// from the code, in the same transaction only when the code was replayed.
func (s *Store) ConsumeAuthCode(ctx context.Context, hash []byte, now time.Time, ev *store.AuditEvent) (*store.AuthCode, error) {
	var code *store.AuthCode
	var replay bool
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		c, err := scanAuthCode(tx.QueryRow(ctx, `UPDATE auth_codes SET consumed_at = $2
			WHERE hash = $1 AND consumed_at IS NULL AND expires_at > $2
			RETURNING `+authCodeCols, hash, now))
		if err == nil {
			code = c
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		// Nothing consumed: the code is unknown, expired or already used.
		// FOR UPDATE: an exchange still issuing this grant's tokens holds the
		// row (IssueTokens locks it), so the replay revokes after it commits,
		// or it sees the mark below and refuses.
		c, err = scanAuthCode(tx.QueryRow(ctx, `SELECT `+authCodeCols+` FROM auth_codes WHERE hash = $1 FOR UPDATE`, hash))
		if err != nil {
			return err // no rows: unknown
		}
		if c.ConsumedAt.IsZero() {
			return notFound("consume auth code") // expired
		}
		code, replay = c, true
		if _, err := revokeGrant(ctx, tx, c.TenantID, c.GrantID, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE auth_codes SET grant_revoked_at = COALESCE(grant_revoked_at, $2) WHERE hash = $1`, hash, now); err != nil {
			return err
		}
		if ev == nil {
			return nil
		}
		return insertEvent(ctx, tx, ev.WithCode(c))
	})
	if err != nil {
		return nil, mapErr("consume auth code", err)
	}
	if replay {
		return code, fmt.Errorf("postgres: consume auth code: %w", store.ErrAlreadyUsed)
	}
	return code, nil
}

const refreshCols = `hash, tenant_id, grant_id, client_id, user_id, scopes, resource, auth_time,
	created_at, expires_at, rotated_at, revoked_at, redirect_uri`

func scanRefresh(row pgx.Row) (*store.RefreshToken, error) {
	var t store.RefreshToken
	var rotated, revoked *time.Time
	if err := row.Scan(&t.Hash, &t.TenantID, &t.GrantID, &t.ClientID, &t.UserID, &t.Scopes,
		&t.Resource, &t.AuthTime, &t.CreatedAt, &t.ExpiresAt, &rotated, &revoked, &t.RedirectURI); err != nil {
		return nil, err
	}
	t.AuthTime, t.CreatedAt, t.ExpiresAt = utc(t.AuthTime), utc(t.CreatedAt), utc(t.ExpiresAt)
	t.RotatedAt, t.RevokedAt = fromNull(rotated), fromNull(revoked)
	return &t, nil
}

// GetRefreshToken returns the token with this hash whatever its state.
func (s *Store) GetRefreshToken(ctx context.Context, hash []byte) (*store.RefreshToken, error) {
	t, err := scanRefresh(s.pool.QueryRow(ctx, `SELECT `+refreshCols+` FROM refresh_tokens WHERE hash = $1`, hash))
	if err != nil {
		return nil, mapErr("get refresh token", err)
	}
	return t, nil
}

// queueIssuance queues the writes of iss on b; event ids are set when the
// batch's results are read.
func queueIssuance(b *pgx.Batch, iss *store.Issuance) error {
	if iss == nil {
		return nil
	}
	if at := iss.AccessToken; at != nil {
		list, text := storedScopes(at.Scopes)
		b.Queue(`INSERT INTO access_tokens (jti, tenant_id, grant_id, client_id, user_id, resource,
			scopes, scope, expires_at, revoked_at, redirect_uri, token_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			at.JTI, at.TenantID, at.GrantID, at.ClientID, at.UserID, at.Resource, list, text,
			at.ExpiresAt, nullTime(at.RevokedAt), at.RedirectURI, at.Digest)
	}
	if rt := iss.RefreshToken; rt != nil {
		b.Queue(`INSERT INTO refresh_tokens (`+refreshCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			rt.Hash, rt.TenantID, rt.GrantID, rt.ClientID, rt.UserID, rt.Scopes, rt.Resource,
			rt.AuthTime, rt.CreatedAt, rt.ExpiresAt, nullTime(rt.RotatedAt), nullTime(rt.RevokedAt),
			rt.RedirectURI)
	}
	if u := iss.ConsentUse; u != nil {
		if q, args := touchConsents(u.Filter, u.Scopes, u.At); q != "" {
			b.Queue(q, args...)
		}
	}
	if c := iss.Touch; c != nil {
		// Forward only; the issuance's live check (when set) already holds
		// the client's advisory lock, taken before this row lock as every
		// writer of the client takes them.
		b.Queue(`UPDATE clients SET last_used_at = $3 WHERE tenant_id = $1 AND id = $2
			AND (last_used_at IS NULL OR last_used_at < $3)`, c.TenantID, c.ClientID, c.At)
	}
	for _, ev := range iss.Events {
		if err := queueEvent(b, ev); err != nil {
			return err
		}
	}
	return nil
}

// queueEvent queues ev (nil: none) on b; its id is set when the batch's
// results are read.
func queueEvent(b *pgx.Batch, ev *store.AuditEvent) error {
	if ev == nil {
		return nil
	}
	args, err := eventArgs(ev)
	if err != nil {
		return err
	}
	b.Queue(insertEventSQL, args...).QueryRow(func(row pgx.Row) error { return row.Scan(&ev.ID) })
	return nil
}

// IssueTokens persists one token response. The writes go out as one
// pipelined batch, which PostgreSQL runs as a single implicit transaction:
// if any insert fails (a duplicate jti or hash is store.ErrConflict), none
// is kept.
func (s *Store) IssueTokens(ctx context.Context, iss *store.Issuance) error {
	if err := store.CheckExchange(iss); err != nil {
		return mapErr("issue tokens", err)
	}
	if iss != nil && iss.SubjectJTI != "" {
		b, err := exchangeBatch(iss)
		if err != nil {
			return mapErr("issue tokens", err)
		}
		return mapErr("issue tokens", liveErr(s.pool.SendBatch(ctx, b).Close()))
	}
	if b, err := liveBatch(iss); b != nil || err != nil {
		if err != nil {
			return mapErr("issue tokens", err)
		}
		if iss.Check.UserID == "" {
			return mapErr("issue tokens", s.group.do(ctx, iss.Check.ClientID, b))
		}
		return mapErr("issue tokens", liveErr(s.pool.SendBatch(ctx, b).Close()))
	}
	tenant, grant := issuanceGrant(iss)
	b := &pgx.Batch{}
	if c := iss.Check; c != nil && grant == "" {
		// One pipelined batch is one implicit transaction: the live check
		// leads it, and its failure discards the rest.
		b.Queue(checkLiveSQL, c.TenantID, c.ClientID, c.UserID)
	}
	checks := b.Len()
	if err := queueIssuance(b, iss); err != nil {
		return mapErr("issue tokens", err)
	}
	if b.Len() == checks {
		return nil // nothing to write
	}
	if grant == "" {
		return mapErr("issue tokens", liveErr(s.pool.SendBatch(ctx, b).Close()))
	}
	return mapErr("issue tokens", s.inTx(ctx, func(tx pgx.Tx) error {
		if err := checkLive(ctx, tx, iss.Check); err != nil {
			return err
		}
		// Tokens of a code's grant: lock the grant's code rows and refuse if a
		// replay revoked the grant meanwhile (RFC 6749 §4.1.2).
		rows, err := tx.Query(ctx, `SELECT grant_revoked_at IS NOT NULL FROM auth_codes
			WHERE tenant_id = $1 AND grant_id = $2 FOR UPDATE`, tenant, grant)
		if err != nil {
			return err
		}
		revoked := false
		for rows.Next() {
			var r bool
			if err := rows.Scan(&r); err != nil {
				rows.Close()
				return err
			}
			revoked = revoked || r
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if revoked {
			return store.ErrAlreadyUsed
		}
		return tx.SendBatch(ctx, b).Close()
	}))
}

// liveBatch is the statements of the client-credentials hot path (an
// issuance with a live check, an access token, its event and no grant
// family): the live check, the access token and its event as one
// statement (issueLiveSQL), then the rest of the issuance. Nil for any
// other issuance.
func liveBatch(iss *store.Issuance) (*pgx.Batch, error) {
	if iss == nil {
		return nil, nil
	}
	_, grant := issuanceGrant(iss)
	c, at := iss.Check, iss.AccessToken
	if c == nil || grant != "" || at == nil || len(iss.Events) == 0 || iss.Events[0] == nil {
		return nil, nil
	}
	ev := iss.Events[0]
	args, err := eventArgs(ev)
	if err != nil {
		return nil, err
	}
	b := &pgx.Batch{}
	list, text := storedScopes(at.Scopes)
	b.Queue(issueLiveSQL, append([]any{c.TenantID, c.ClientID, c.UserID,
		at.JTI, at.TenantID, at.GrantID, at.ClientID, at.UserID, at.Resource, list, text,
		at.ExpiresAt, nullTime(at.RevokedAt), at.RedirectURI, at.Digest}, args...)...).
		QueryRow(func(row pgx.Row) error { return row.Scan(&ev.ID) })
	rest := *iss
	rest.AccessToken, rest.Events = nil, iss.Events[1:]
	if err := queueIssuance(b, &rest); err != nil {
		return nil, err
	}
	return b, nil
}

// exchangeBatch is the one pipelined batch (one implicit transaction, one
// round trip) of a token exchange's issuance (store.Issuance.SubjectJTI):
// the live check, the subject token's check (agentid_check_subject, which
// holds its family's lock shared until the commit), then the access token,
// which takes the subject token's family, and the rest of the issuance.
func exchangeBatch(iss *store.Issuance) (*pgx.Batch, error) {
	at, c := iss.AccessToken, iss.Check
	b := &pgx.Batch{}
	b.Queue(checkLiveSQL, c.TenantID, c.ClientID, c.UserID)
	b.Queue(`SELECT agentid_check_subject($1, $2)`, at.TenantID, iss.SubjectJTI)
	list, text := storedScopes(at.Scopes)
	b.Queue(`INSERT INTO access_tokens (jti, tenant_id, grant_id, client_id, user_id, resource,
		scopes, scope, expires_at, revoked_at, redirect_uri, token_sha256)
		SELECT $1, $2, s.grant_id, $3, $4, $5, $6, $12, $7, $8, $9, $11 FROM access_tokens s WHERE s.jti = $10`,
		at.JTI, at.TenantID, at.ClientID, at.UserID, at.Resource, list,
		at.ExpiresAt, nullTime(at.RevokedAt), at.RedirectURI, iss.SubjectJTI, at.Digest, text)
	rest := *iss
	rest.AccessToken = nil
	if err := queueIssuance(b, &rest); err != nil {
		return nil, err
	}
	return b, nil
}

// issueLiveSQL is an issuance without a grant family (client
// credentials) in one statement: agentid_check_live, then the access
// token, then its audit event ($16 on, insertEventSQL's arguments). Each
// step reads the row the one before it returns, so they run in this
// order: the check takes its locks and reads the client in snapshots of
// its own (it is VOLATILE) before anything is written, and raises to
// abort the whole statement, as it does leading a batch
// (docs/benchmarks.md, "The write path of an issued token").
const issueLiveSQL = `WITH live AS MATERIALIZED (SELECT agentid_check_live($1, $2, $3)),
	at AS (INSERT INTO access_tokens (jti, tenant_id, grant_id, client_id, user_id, resource,
		scopes, scope, expires_at, revoked_at, redirect_uri, token_sha256)
		SELECT $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15 FROM live RETURNING 1)
	INSERT INTO audit_events (id, tenant_id, time, type, request_id, client_id,
	user_id, resource, scopes, scope, ip, outcome, details)
	SELECT ` + eventIDExpr + `, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27 FROM at RETURNING id`

// checkLiveSQL runs agentid_check_live (migrations 0006, 0007): it holds
// the client's and user's advisory locks shared until the issuance commits,
// then reads the rows, so a concurrent disable, delete or revocation (which
// takes the same locks exclusively, lockClient and lockUser) either commits
// first, and is seen, or waits for the issuance and then finds its tokens
// to revoke. The locks are taken before any row, the order the writers
// keep too.
const checkLiveSQL = `SELECT agentid_check_live($1, $2, $3)`

// lockClient and lockUser take, until the transaction ends, the exclusive
// advisory lock that agentid_check_live takes shared (migration 0007).
// Every path that disables or deletes a client or user, or revokes its
// tokens, takes it before its first write.
func lockClient(ctx context.Context, tx pgx.Tx, tenantID, clientID string) error {
	_, err := tx.Exec(ctx, `SELECT agentid_live_lock('client', $1, $2, false)`, tenantID, clientID)
	return err
}

func lockUser(ctx context.Context, tx pgx.Tx, tenantID, userID string) error {
	_, err := tx.Exec(ctx, `SELECT agentid_live_lock('user', $1, $2, false)`, tenantID, userID)
	return err
}

// SQLSTATEs agentid_check_live raises.
const (
	sqlstateClientGone     = "AG001"
	sqlstateUserGone       = "AG002"
	sqlstateSubjectUnknown = "AG003" // agentid_check_subject (migration 0010)
	sqlstateSubjectRevoked = "AG004"
)

// checkLive verifies store.LiveCheck inside tx.
func checkLive(ctx context.Context, tx pgx.Tx, c *store.LiveCheck) error {
	if c == nil {
		return nil
	}
	_, err := tx.Exec(ctx, checkLiveSQL, c.TenantID, c.ClientID, c.UserID)
	return liveErr(err)
}

// liveErr turns agentid_check_live's errors into the store's sentinels.
func liveErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case sqlstateClientGone:
			return store.ErrClientGone
		case sqlstateUserGone:
			return store.ErrUserGone
		case sqlstateSubjectUnknown:
			return store.ErrNotFound
		case sqlstateSubjectRevoked:
			return store.ErrRevoked
		}
	}
	return err
}

// issuanceGrant names the grant an issuance's tokens belong to.
func issuanceGrant(iss *store.Issuance) (tenant, grant string) {
	if iss == nil {
		return "", ""
	}
	if at := iss.AccessToken; at != nil && at.GrantID != "" {
		return at.TenantID, at.GrantID
	}
	if rt := iss.RefreshToken; rt != nil {
		return rt.TenantID, rt.GrantID
	}
	return "", ""
}

// RotateRefresh retires the refresh token oldHash and persists iss. The row
// lock taken by SELECT … FOR UPDATE serialises concurrent rotations of one
// token across replicas: the second one sees RotatedAt set and is accepted
// within the reuse interval or treated as reuse (store.Tokens). On reuse (the token was already rotated or revoked) nothing of iss
// is written; the grant is revoked and reuse is written instead, and the
// error is store.ErrAlreadyUsed (RFC 9700 §4.14.2). As for codes, reuse is
// checked before expiry. An unknown or expired token is store.ErrNotFound.
func (s *Store) RotateRefresh(ctx context.Context, oldHash []byte, now time.Time, iss *store.Issuance, reuse *store.AuditEvent) error {
	if iss != nil && iss.SubjectJTI != "" {
		return mapErr("rotate refresh token", store.ErrInvalid) // an exchange rotates nothing
	}
	var reused bool
	var check *store.LiveCheck
	var reuseWithin *store.ReuseInterval
	if iss != nil {
		check, reuseWithin = iss.Check, iss.Reuse
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := checkLive(ctx, tx, check); err != nil {
			return err
		}
		// Rotations of one family take turns: a presentation within the
		// reuse interval is accepted only while no token of the family was
		// rotated after it, which another rotation may be changing at this
		// very moment.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended(tenant_id || '/' || grant_id, 0))
			FROM refresh_tokens WHERE hash = $1`, oldHash); err != nil {
			return err
		}
		old, err := scanRefresh(tx.QueryRow(ctx, `SELECT `+refreshCols+` FROM refresh_tokens
			WHERE hash = $1 FOR UPDATE`, oldHash))
		if err != nil {
			return err
		}
		if reuseWithin != nil && !reuseWithin.Since.IsZero() && !old.RotatedAt.IsZero() && old.RevokedAt.IsZero() &&
			!old.RotatedAt.Before(reuseWithin.Since) && now.Before(old.ExpiresAt) {
			// Accepted only while it is the family's most recent rotation
			// (the client has not moved on since); the advisory lock keeps
			// that true until the commit. A token without a grant is a
			// family of its own.
			var movedOn bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM refresh_tokens
				WHERE tenant_id = $1 AND grant_id = $2 AND grant_id <> '' AND rotated_at > $3)`,
				old.TenantID, old.GrantID, old.RotatedAt).Scan(&movedOn); err != nil {
				return err
			}
			if !movedOn {
				b := &pgx.Batch{}
				if err := queueIssuance(b, iss); err != nil {
					return err
				}
				if err := queueEvent(b, reuseWithin.Event); err != nil {
					return err
				}
				return tx.SendBatch(ctx, b).Close()
			}
		}
		if !old.RotatedAt.IsZero() || !old.RevokedAt.IsZero() {
			reused = true
			revoked, err := revokeGrant(ctx, tx, old.TenantID, old.GrantID, now)
			if err != nil || !revoked {
				return err
			}
			return insertEvent(ctx, tx, reuse)
		}
		if !now.Before(old.ExpiresAt) {
			return notFound("rotate refresh token")
		}
		b := &pgx.Batch{}
		b.Queue(`UPDATE refresh_tokens SET rotated_at = $2 WHERE hash = $1`, oldHash, now)
		if err := queueIssuance(b, iss); err != nil {
			return err
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return mapErr("rotate refresh token", err)
	}
	if reused {
		return fmt.Errorf("postgres: rotate refresh token: %w", store.ErrAlreadyUsed)
	}
	return nil
}

// revokeGrantAccessSQL revokes the recorded access tokens of a grant
// ($1 tenant, $2 grant, $3 now). Its term that the grant is not empty
// (it never is here) lets a generic plan use the partial grant index
// (migration 0024).
const revokeGrantAccessSQL = `UPDATE access_tokens SET revoked_at = $3
	WHERE tenant_id = $1 AND grant_id = $2 AND grant_id <> '' AND revoked_at IS NULL`

// revokeGrant revokes every refresh token and recorded access token of the
// grant that is not revoked yet. It reports whether it revoked anything, so
// that a caller records a revocation once however many requests race to it.
func revokeGrant(ctx context.Context, tx pgx.Tx, tenantID, grantID string, now time.Time) (bool, error) {
	if grantID == "" {
		return false, nil // grant-less tokens belong to no family
	}
	b := &pgx.Batch{}
	// The family's lock first (migration 0010): an exchange continuing the
	// family either commits before the updates below read, so they revoke
	// its token, or waits and then finds the family revoked.
	b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))`, tenantID, grantID)
	b.Queue(`UPDATE refresh_tokens SET revoked_at = $3
		WHERE tenant_id = $1 AND grant_id = $2 AND revoked_at IS NULL`, tenantID, grantID, now)
	b.Queue(revokeGrantAccessSQL, tenantID, grantID, now)
	br := tx.SendBatch(ctx, b)
	var revoked int64
	for i := range 3 {
		ct, err := br.Exec()
		if err != nil {
			_ = br.Close()
			return false, fmt.Errorf("revoke grant: %w", err)
		}
		if i > 0 {
			revoked += ct.RowsAffected()
		}
	}
	if err := br.Close(); err != nil {
		return false, fmt.Errorf("revoke grant: %w", err)
	}
	return revoked > 0, nil
}

// RevokeGrant revokes every refresh token and recorded access token of the
// grant; an unknown or already revoked grant is not an error, an empty
// grant id is store.ErrInvalid.
func (s *Store) RevokeGrant(ctx context.Context, tenantID, grantID string, now time.Time, ev *store.AuditEvent) error {
	if grantID == "" {
		return mapErr("revoke grant", store.ErrInvalid)
	}
	return mapErr("revoke grant", s.inTx(ctx, func(tx pgx.Tx) error {
		revoked, err := revokeGrant(ctx, tx, tenantID, grantID, now)
		if err != nil || !revoked {
			return err
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// RevokeClientTokens revokes every refresh token and recorded access token
// issued to the client and writes ev, in one transaction.
func (s *Store) RevokeClientTokens(ctx context.Context, tenantID, clientID string, now time.Time, ev *store.AuditEvent) error {
	return mapErr("revoke client tokens", s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockClient(ctx, tx, tenantID, clientID); err != nil {
			return err
		}
		for _, table := range []string{"refresh_tokens", "access_tokens"} {
			if _, err := tx.Exec(ctx, `UPDATE `+table+` SET revoked_at = $3
				WHERE tenant_id = $1 AND client_id = $2 AND revoked_at IS NULL`, tenantID, clientID, now); err != nil {
				return err
			}
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// RevokeUserAccess deletes the user's sessions and pending codes, marks the
// grants of their consumed codes revoked and revokes their tokens, with ev,
// in one transaction. The user's live lock is taken first: an issuance
// holding it (checkLive) commits before the statements below start, so each
// of them sees its tokens; one that comes after finds its code's grant
// revoked or its refresh token revoked.
func (s *Store) RevokeUserAccess(ctx context.Context, tenantID, userID string, now time.Time, ev *store.AuditEvent) error {
	return mapErr("revoke user access", s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockUser(ctx, tx, tenantID, userID); err != nil {
			return err
		}
		for _, st := range []struct {
			q    string
			args []any
		}{
			{`DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2`, []any{tenantID, userID}},
			{`DELETE FROM auth_codes WHERE tenant_id = $1 AND user_id = $2 AND consumed_at IS NULL`, []any{tenantID, userID}},
			{`UPDATE auth_codes SET grant_revoked_at = COALESCE(grant_revoked_at, $3) WHERE tenant_id = $1 AND user_id = $2`, []any{tenantID, userID, now}},
			{`UPDATE refresh_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL`, []any{tenantID, userID, now}},
			{`UPDATE access_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND user_id <> '' AND revoked_at IS NULL`, []any{tenantID, userID, now}},
		} {
			if _, err := tx.Exec(ctx, st.q, st.args...); err != nil {
				return err
			}
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// RevokeAccessToken denylists at.JTI until at.ExpiresAt, recording the token
// if it was not recorded. Revoking again keeps the first revocation time.
func (s *Store) RevokeAccessToken(ctx context.Context, at *store.AccessToken, now time.Time, ev *store.AuditEvent) error {
	return mapErr("revoke access token", s.inTx(ctx, func(tx pgx.Tx) error {
		list, text := storedScopes(at.Scopes)
		if _, err := tx.Exec(ctx, `INSERT INTO access_tokens (jti, tenant_id, grant_id, client_id,
			user_id, resource, scopes, scope, expires_at, revoked_at, redirect_uri) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (jti) DO UPDATE SET revoked_at = coalesce(access_tokens.revoked_at, EXCLUDED.revoked_at)`,
			at.JTI, at.TenantID, at.GrantID, at.ClientID, at.UserID, at.Resource, list, text,
			at.ExpiresAt, now, at.RedirectURI); err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// AccessTokenRevoked reports whether the jti is denylisted.
func (s *Store) AccessTokenRevoked(ctx context.Context, jti string) (bool, error) {
	var revoked bool
	err := s.pool.QueryRow(ctx, `SELECT revoked_at IS NOT NULL FROM access_tokens WHERE jti = $1`, jti).Scan(&revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, mapErr("access token revoked", err)
	}
	return revoked, nil
}

// UseJTI records a single-use JWT id until exp (RFC 7523 §3 item 7: the
// authorization server may reject a JWT whose jti it has seen). One
// INSERT … ON CONFLICT makes it exactly-once across replicas: it either
// inserts, replaces a record that expired at or before now, or matches
// nothing, which is store.ErrConflict.
func (s *Store) UseJTI(ctx context.Context, key, jti string, exp, now time.Time) error {
	var one int
	err := s.pool.QueryRow(ctx, `INSERT INTO used_jtis (key, jti, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (key, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at
		WHERE used_jtis.expires_at <= $4
		RETURNING 1`, key, jti, exp, now).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: use jti: %w", store.ErrConflict)
	}
	return mapErr("use jti", err)
}

// DeleteExpired removes codes, refresh tokens, access-token records,
// sessions and JTIs that expired before now, in one transaction.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time) error {
	return mapErr("delete expired", s.inTx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, table := range []string{"auth_codes", "refresh_tokens", "access_tokens", "sessions", "used_jtis"} {
			b.Queue(`DELETE FROM `+table+` WHERE expires_at < $1`, now)
		}
		// A rotated-out API key is destroyed once its overlap ended.
		b.Queue(`UPDATE connections SET previous_secret = NULL, previous_until = NULL
			WHERE previous_until IS NOT NULL AND previous_until < $1`, now)
		return tx.SendBatch(ctx, b).Close()
	}))
}
