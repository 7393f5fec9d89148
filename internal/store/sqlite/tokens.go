package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/agentid/agentid/internal/store"
)

const (
	codeCols    = `hash, tenant_id, grant_id, client_id, user_id, redirect_uri, scopes, resource, code_challenge, code_challenge_method, nonce, auth_time, created_at, expires_at, consumed_at`
	qInsertCode = `INSERT INTO auth_codes (` + codeCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qGetCode    = `SELECT ` + codeCols + ` FROM auth_codes WHERE hash = ?`
	qConsume    = `UPDATE auth_codes SET consumed_at = ? WHERE hash = ?`
	// qMarkReplayed records on the code that its grant was revoked by a replay.
	qMarkReplayed = `UPDATE auth_codes SET grant_revoked_at = COALESCE(grant_revoked_at, ?) WHERE hash = ?`
	qGrantRevoked = `SELECT COUNT(*) FROM auth_codes WHERE tenant_id = ? AND grant_id = ? AND grant_revoked_at IS NOT NULL`

	refreshCols    = `hash, tenant_id, grant_id, client_id, user_id, scopes, resource, auth_time, created_at, expires_at, rotated_at, revoked_at, redirect_uri`
	qInsertRefresh = `INSERT INTO refresh_tokens (` + refreshCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qGetRefresh    = `SELECT ` + refreshCols + ` FROM refresh_tokens WHERE hash = ?`
	qRefreshState  = `SELECT tenant_id, grant_id, expires_at, rotated_at, revoked_at FROM refresh_tokens WHERE hash = ?`
	qRotate        = `UPDATE refresh_tokens SET rotated_at = ? WHERE hash = ?`
	// qRotatedSince reports whether a token of the family was rotated after
	// the given time: the client has moved on since (store.ReuseInterval).
	// A token without a grant is a family of its own.
	qRotatedSince = `SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE tenant_id = ? AND grant_id = ? AND grant_id <> '' AND rotated_at > ?)`

	qInsertAccess = `INSERT INTO access_tokens (jti, tenant_id, grant_id, client_id, user_id, resource, scopes, expires_at, revoked_at, redirect_uri, token_sha256)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	// Recording a revocation keeps an earlier revocation time.
	qRevokeAccess  = qInsertAccess + ` ON CONFLICT (jti) DO UPDATE SET revoked_at = coalesce(access_tokens.revoked_at, excluded.revoked_at)`
	qAccessRevoked = `SELECT revoked_at IS NOT NULL FROM access_tokens WHERE jti = ?`

	// The grant_id <> '' terms let SQLite use the partial index and keep an
	// empty grant id from matching every client-credentials token.
	qRevokeGrantRefresh = `UPDATE refresh_tokens SET revoked_at = ? WHERE tenant_id = ? AND grant_id = ? AND revoked_at IS NULL`
	qRevokeGrantAccess  = `UPDATE access_tokens SET revoked_at = ? WHERE tenant_id = ? AND grant_id = ? AND grant_id <> '' AND revoked_at IS NULL`

	// qInsertAccessLive is qInsertAccess that inserts nothing unless the
	// client (and, when the fourth-last argument is not empty, the user)
	// exists and is enabled: the live check of the hot path folded into the
	// insert it guards, one statement instead of two or three.
	qInsertAccessLive = `INSERT INTO access_tokens (jti, tenant_id, grant_id, client_id, user_id, resource, scopes, expires_at, revoked_at, redirect_uri, token_sha256)
	SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
	WHERE EXISTS (SELECT 1 FROM clients WHERE tenant_id = ? AND id = ? AND NOT disabled)
	AND (? = '' OR EXISTS (SELECT 1 FROM users WHERE tenant_id = ? AND id = ? AND NOT disabled))`

	// qInsertAccessLiveGrant is qInsertAccessLive for a token of a grant
	// family: it also inserts nothing when the grant was revoked by a code
	// replay (qGrantRevoked), so that an issuance continuing a family costs
	// one statement, not four.
	qInsertAccessLiveGrant = qInsertAccessLive + `
	AND NOT EXISTS (SELECT 1 FROM auth_codes WHERE tenant_id = ? AND grant_id = ? AND grant_revoked_at IS NOT NULL)`

	// qInsertAccessExchanged is the access-token insert of a token
	// exchange (Issuance.SubjectJTI): the token takes the family of the
	// subject token's record, and nothing is inserted unless that record
	// is of the tenant and not revoked, its family not revoked by a code
	// replay, and the client and user (arguments 5 to 9, as for
	// qInsertAccessLive) alive. The check and the write are one statement
	// of the single writer, so no revocation can fall between them.
	//
	// It is one row of VALUES whose grant_id is NULL when a check fails,
	// which the NOT NULL column refuses (isNotNull; whyNotExchanged names
	// the reason), rather than INSERT … SELECT … FROM access_tokens: that
	// form reads the table it writes, so SQLite first copies the selected
	// row into a temporary table, and as a possibly multi-row statement it
	// journals every page it changes in case it must be undone.
	qInsertAccessExchanged = `INSERT INTO access_tokens (jti, tenant_id, grant_id, client_id, user_id, resource, scopes, expires_at, revoked_at, redirect_uri, token_sha256)
	VALUES (?, ?, (SELECT s.grant_id FROM access_tokens s
		WHERE s.jti = ? AND s.tenant_id = ? AND s.revoked_at IS NULL
		AND NOT EXISTS (SELECT 1 FROM auth_codes WHERE tenant_id = s.tenant_id AND grant_id = s.grant_id AND s.grant_id <> '' AND grant_revoked_at IS NOT NULL)
		AND EXISTS (SELECT 1 FROM clients WHERE tenant_id = ? AND id = ? AND NOT disabled)
		AND (? = '' OR EXISTS (SELECT 1 FROM users WHERE tenant_id = ? AND id = ? AND NOT disabled))),
	?, ?, ?, ?, ?, ?, ?, ?)`
	// qSubjectState explains why qInsertAccessExchanged inserted nothing.
	qSubjectState = `SELECT s.tenant_id, s.revoked_at IS NOT NULL OR EXISTS (SELECT 1 FROM auth_codes
	WHERE tenant_id = s.tenant_id AND grant_id = s.grant_id AND s.grant_id <> '' AND grant_revoked_at IS NOT NULL)
	FROM access_tokens s WHERE s.jti = ?`

	// qTouchClient moves a client's last use forward (Issuance.Touch),
	// never back.
	qTouchClient = `UPDATE clients SET last_used_at = ? WHERE tenant_id = ? AND id = ? AND (last_used_at IS NULL OR last_used_at < ?)`

	qClientDisabled = `SELECT disabled FROM clients WHERE tenant_id = ? AND id = ?`
	qUserDisabled   = `SELECT disabled FROM users WHERE tenant_id = ? AND id = ?`

	// Ending a user's access (RevokeUserAccess).
	qDeleteUserSessions     = `DELETE FROM sessions WHERE tenant_id = ? AND user_id = ?`
	qDeleteUserPendingCodes = `DELETE FROM auth_codes WHERE tenant_id = ? AND user_id = ? AND consumed_at IS NULL`
	qMarkUserCodesRevoked   = `UPDATE auth_codes SET grant_revoked_at = COALESCE(grant_revoked_at, ?) WHERE tenant_id = ? AND user_id = ?`
	qRevokeUserRefresh      = `UPDATE refresh_tokens SET revoked_at = ? WHERE tenant_id = ? AND user_id = ? AND revoked_at IS NULL`
	qRevokeUserAccess       = `UPDATE access_tokens SET revoked_at = ? WHERE tenant_id = ? AND user_id = ? AND user_id <> '' AND revoked_at IS NULL`

	// A jti may be recorded again only once its previous record has expired.
	qUseJTI = `INSERT INTO used_jtis (key, jti, expires_at) VALUES (?, ?, ?)
	ON CONFLICT (key, jti) DO UPDATE SET expires_at = excluded.expires_at WHERE used_jtis.expires_at <= ?`
)

// ---- authorization codes -------------------------------------------------------

// CreateAuthCode implements store.Store.
func (s *Store) CreateAuthCode(ctx context.Context, c *store.AuthCode, ev *store.AuditEvent) error {
	evRow := prepAudit(ev)
	return wrap("create auth code", s.w.do(ctx, func(tx *wtx) error {
		if _, err := tx.exec(qInsertCode, c.Hash, c.TenantID, c.GrantID, c.ClientID, c.UserID, c.RedirectURI,
			listText(c.Scopes), c.Resource, c.CodeChallenge, c.CodeChallengeMethod, c.Nonce, tv(c.AuthTime),
			tv(c.CreatedAt), tv(c.ExpiresAt), tv(c.ConsumedAt)); err != nil {
			return err
		}
		return tx.audit(evRow)
	}))
}

// ConsumeAuthCode implements store.Store. A consumed code is reported as
// reused even once expired: the second presentation is the event RFC 6749
// §4.1.2 asks the server to answer by revoking the grant.
func (s *Store) ConsumeAuthCode(ctx context.Context, hash []byte, now time.Time, ev *store.AuditEvent) (*store.AuthCode, error) {
	var code *store.AuthCode
	var evRow auditRow
	err := s.w.do(ctx, func(tx *wtx) error {
		c := new(store.AuthCode)
		err := tx.queryRow(qGetCode, hash).Scan(&c.Hash, &c.TenantID, &c.GrantID, &c.ClientID, &c.UserID,
			&c.RedirectURI, listCol{&c.Scopes}, &c.Resource, &c.CodeChallenge, &c.CodeChallengeMethod, &c.Nonce,
			timeCol{&c.AuthTime}, timeCol{&c.CreatedAt}, timeCol{&c.ExpiresAt}, timeCol{&c.ConsumedAt})
		if err != nil {
			return err
		}
		if !c.ConsumedAt.IsZero() {
			code = c
			if _, err := tx.revokeGrant(c.TenantID, c.GrantID, now); err != nil {
				return err
			}
			if _, err := tx.exec(qMarkReplayed, now.UnixMicro(), hash); err != nil {
				return err
			}
			if ev != nil {
				evRow = prepAudit(ev.WithCode(c))
			}
			if err := tx.audit(evRow); err != nil {
				return err
			}
			return commitAnd(store.ErrAlreadyUsed)
		}
		if now.UnixMicro() >= c.ExpiresAt.UnixMicro() {
			return store.ErrNotFound
		}
		if _, err := tx.exec(qConsume, now.UnixMicro(), hash); err != nil {
			return err
		}
		c.ConsumedAt = time.UnixMicro(now.UnixMicro()).UTC()
		code = c
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrAlreadyUsed) {
		return nil, wrap("consume auth code", err)
	}
	return code, wrap("consume auth code", err)
}

// ---- refresh and access tokens ----------------------------------------------------

func refreshArgs(rt *store.RefreshToken) []any {
	return []any{rt.Hash, rt.TenantID, rt.GrantID, rt.ClientID, rt.UserID, listText(rt.Scopes),
		rt.Resource, tv(rt.AuthTime), tv(rt.CreatedAt), tv(rt.ExpiresAt), tv(rt.RotatedAt), tv(rt.RevokedAt),
		rt.RedirectURI}
}

func accessArgs(at *store.AccessToken, revokedAt any) []any {
	return []any{at.JTI, at.TenantID, at.GrantID, at.ClientID, at.UserID, at.Resource,
		listText(at.Scopes), tv(at.ExpiresAt), revokedAt, at.RedirectURI, bv(at.Digest)}
}

// issueRows is an Issuance with its column values prepared outside the
// writer.
type issueRows struct {
	access, refresh []any
	events          []auditRow
	// tenant and grant name the grant the tokens belong to ("" for none).
	tenant, grant string
	check         *store.LiveCheck
	// accessLive, when set, are the arguments of qInsertAccessLive: the
	// client-credentials hot path, whose live check rides on the insert.
	accessLive []any
	// accessLiveGrant, when set, are the arguments of
	// qInsertAccessLiveGrant: the same for a token of a grant family,
	// whose revocation check rides on the insert too.
	accessLiveGrant []any
	// accessExchanged, when set, are the arguments of
	// qInsertAccessExchanged (Issuance.SubjectJTI), and subject the
	// subject token's jti and tenant.
	accessExchanged  []any
	subject, subjTen string
	// touch records the consent use ("" for none).
	touch     string
	touchArgs []any
	// touchClient, when set, are the arguments of qTouchClient
	// (Issuance.Touch); nil adds no statement.
	touchClient []any
}

func prepIssue(iss *store.Issuance) *issueRows {
	p := &issueRows{events: prepAudits(iss.Events), check: iss.Check}
	exchanged := iss.AccessToken != nil && iss.SubjectJTI != "" && iss.Check != nil
	if at := iss.AccessToken; at != nil && !exchanged {
		p.access = accessArgs(at, tv(at.RevokedAt))
		p.tenant, p.grant = at.TenantID, at.GrantID
	}
	if rt := iss.RefreshToken; rt != nil {
		p.refresh = refreshArgs(rt)
		p.tenant, p.grant = rt.TenantID, rt.GrantID
	}
	if u := iss.ConsentUse; u != nil {
		p.touch, p.touchArgs = touchConsents(u.Filter, u.Scopes, u.At)
	}
	if c := iss.Touch; c != nil {
		at := c.At.UnixMicro()
		p.touchClient = []any{at, c.TenantID, c.ClientID, at}
	}
	if at := iss.AccessToken; exchanged {
		// The family comes from the subject token's record, in the insert;
		// its arguments are the only ones built for the access token.
		c := p.check
		p.subject, p.subjTen = iss.SubjectJTI, at.TenantID
		p.accessExchanged = []any{at.JTI, at.TenantID,
			iss.SubjectJTI, at.TenantID, c.TenantID, c.ClientID, c.UserID, c.TenantID, c.UserID,
			at.ClientID, at.UserID, at.Resource, listText(at.Scopes), tv(at.ExpiresAt), tv(at.RevokedAt), at.RedirectURI, bv(at.Digest)}
		return p
	}
	if c := p.check; c != nil && p.access != nil {
		// Built here, outside the writer, which every issuance waits for.
		live := append(p.access[:len(p.access):len(p.access)], c.TenantID, c.ClientID, c.UserID, c.TenantID, c.UserID)
		if p.grant == "" {
			p.accessLive = live
		} else {
			p.accessLiveGrant = append(live, p.tenant, p.grant)
		}
	}
	return p
}

// live checks the issuance's client and user (store.LiveCheck). The writer
// is the only one, so nothing can change them before the commit.
func (tx *wtx) live(c *store.LiveCheck) error {
	if c == nil {
		return nil
	}
	var disabled bool
	switch err := tx.queryRow(qClientDisabled, c.TenantID, c.ClientID).Scan(&disabled); {
	case errors.Is(err, sql.ErrNoRows) || err == nil && disabled:
		return store.ErrClientGone
	case err != nil:
		return err
	}
	if c.UserID == "" {
		return nil
	}
	switch err := tx.queryRow(qUserDisabled, c.TenantID, c.UserID).Scan(&disabled); {
	case errors.Is(err, sql.ErrNoRows) || err == nil && disabled:
		return store.ErrUserGone
	case err != nil:
		return err
	}
	return nil
}

func (tx *wtx) issue(p *issueRows) error {
	if p.accessLive == nil && p.accessLiveGrant == nil && p.accessExchanged == nil {
		// Grants check liveness first, so that a disabled user reads as
		// such rather than as the grant revocation that came with it.
		if err := tx.live(p.check); err != nil {
			return err
		}
	}
	return tx.insertIssue(p)
}

// insertIssue writes p once its checks passed; on the hot path (accessLive)
// the live check rides on the access-token insert, and only when that
// inserts nothing is the reason looked up.
func (tx *wtx) insertIssue(p *issueRows) error {
	if p.grant != "" && p.accessLiveGrant == nil {
		// A replay of the grant's code, detected after this exchange
		// consumed it, revokes what the exchange is issuing now.
		var n int
		if err := tx.queryRow(qGrantRevoked, p.tenant, p.grant).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return store.ErrAlreadyUsed
		}
	}
	switch {
	case p.accessLive != nil:
		res, err := tx.exec(qInsertAccessLive, p.accessLive...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			if err := tx.live(p.check); err != nil {
				return err
			}
			return store.ErrClientGone // unreachable: the writer is the only one
		}
	case p.accessLiveGrant != nil:
		res, err := tx.exec(qInsertAccessLiveGrant, p.accessLiveGrant...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			// Liveness first, so that a disabled user reads as such rather
			// than as the grant revocation that came with it.
			if err := tx.live(p.check); err != nil {
				return err
			}
			return store.ErrAlreadyUsed
		}
	case p.accessExchanged != nil:
		if _, err := tx.exec(qInsertAccessExchanged, p.accessExchanged...); isNotNull(err) {
			return tx.whyNotExchanged(p)
		} else if err != nil {
			return err
		}
	case p.access != nil:
		if _, err := tx.exec(qInsertAccess, p.access...); err != nil {
			return err
		}
	}
	if p.refresh != nil {
		if _, err := tx.exec(qInsertRefresh, p.refresh...); err != nil {
			return err
		}
	}
	if p.touch != "" {
		if _, err := tx.exec(p.touch, p.touchArgs...); err != nil {
			return err
		}
	}
	if p.touchClient != nil {
		if _, err := tx.exec(qTouchClient, p.touchClient...); err != nil {
			return err
		}
	}
	for _, a := range p.events {
		if err := tx.audit(a); err != nil {
			return err
		}
	}
	return nil
}

// whyNotExchanged names the reason qInsertAccessExchanged was refused: a client or user gone first, as for the other issuances, then
// the subject token's record missing or revoked.
func (tx *wtx) whyNotExchanged(p *issueRows) error {
	if err := tx.live(p.check); err != nil {
		return err
	}
	var tenant string
	var revoked bool
	switch err := tx.queryRow(qSubjectState, p.subject).Scan(&tenant, &revoked); {
	case errors.Is(err, sql.ErrNoRows) || err == nil && tenant != p.subjTen:
		return store.ErrNotFound
	case err != nil:
		return err
	case revoked:
		return store.ErrRevoked
	}
	return store.ErrRevoked // unreachable: the writer is the only one
}

// revokeGrant revokes every token of the grant that is not revoked yet.
func (tx *wtx) revokeGrant(tenantID, grantID string, now time.Time) (bool, error) {
	if grantID == "" {
		return false, nil
	}
	at := now.UnixMicro()
	refresh, err := tx.execN(qRevokeGrantRefresh, at, tenantID, grantID)
	if err != nil {
		return false, err
	}
	access, err := tx.execN(qRevokeGrantAccess, at, tenantID, grantID)
	return refresh+access > 0, err
}

// GetRefreshToken implements store.Store.
func (s *Store) GetRefreshToken(ctx context.Context, hash []byte) (*store.RefreshToken, error) {
	row, err := s.queryRow(ctx, qGetRefresh, hash)
	if err != nil {
		return nil, wrap("get refresh token", err)
	}
	rt := new(store.RefreshToken)
	if err := row.Scan(&rt.Hash, &rt.TenantID, &rt.GrantID, &rt.ClientID, &rt.UserID, listCol{&rt.Scopes},
		&rt.Resource, timeCol{&rt.AuthTime}, timeCol{&rt.CreatedAt}, timeCol{&rt.ExpiresAt},
		timeCol{&rt.RotatedAt}, timeCol{&rt.RevokedAt}, &rt.RedirectURI); err != nil {
		return nil, wrap("get refresh token", err)
	}
	return rt, nil
}

// IssueTokens implements store.Store. This is the hot write (one per token
// response); concurrent calls share commits (see writer.go).
func (s *Store) IssueTokens(ctx context.Context, iss *store.Issuance) error {
	if err := store.CheckExchange(iss); err != nil {
		return wrap("issue tokens", err)
	}
	p := prepIssue(iss)
	return wrap("issue tokens", s.w.do(ctx, func(tx *wtx) error { return tx.issue(p) }))
}

// RotateRefresh implements store.Store. A rotated or revoked token is
// reported as reused even once expired, for the same reason as codes (RFC
// 9700 §4.14.2: reuse of a rotated refresh token revokes the family).
func (s *Store) RotateRefresh(ctx context.Context, oldHash []byte, now time.Time, iss *store.Issuance, reuse *store.AuditEvent) error {
	if iss != nil && iss.SubjectJTI != "" {
		return wrap("rotate refresh token", store.ErrInvalid) // an exchange rotates nothing
	}
	reuseRow := prepAudit(reuse)
	p := prepIssue(iss)
	// again is the issuance as a presentation within the reuse interval
	// writes it: with the acceptance event.
	var since time.Time
	again := p
	if iss.Reuse != nil {
		since = iss.Reuse.Since
		again = prepIssue(iss)
		again.events = append(again.events, prepAudit(iss.Reuse.Event))
	}
	return wrap("rotate refresh token", s.w.do(ctx, func(tx *wtx) error {
		if err := tx.live(p.check); err != nil {
			return err
		}
		var tenantID, grantID string
		var expires, rotated, revoked time.Time
		if err := tx.queryRow(qRefreshState, oldHash).Scan(&tenantID, &grantID, timeCol{&expires}, timeCol{&rotated}, timeCol{&revoked}); err != nil {
			return err
		}
		if withinReuseInterval(since, now, expires, rotated, revoked) {
			// Accepted only while it is the family's most recent rotation;
			// the single writer keeps that true until the commit.
			var movedOn bool
			if err := tx.queryRow(qRotatedSince, tenantID, grantID, rotated.UnixMicro()).Scan(&movedOn); err != nil {
				return err
			}
			if !movedOn {
				return tx.insertIssue(again)
			}
		}
		if !rotated.IsZero() || !revoked.IsZero() {
			revoked, err := tx.revokeGrant(tenantID, grantID, now)
			if err != nil {
				return err
			}
			if revoked {
				if err := tx.audit(reuseRow); err != nil {
					return err
				}
			}
			return commitAnd(store.ErrAlreadyUsed)
		}
		if now.UnixMicro() >= expires.UnixMicro() {
			return store.ErrNotFound
		}
		if _, err := tx.exec(qRotate, now.UnixMicro(), oldHash); err != nil {
			return err
		}
		return tx.insertIssue(p)
	}))
}

// withinReuseInterval reports whether a refresh token in this state is
// accepted again (store.ReuseInterval): rotated at or after since, neither
// revoked nor expired.
func withinReuseInterval(since, now, expires, rotated, revoked time.Time) bool {
	return !since.IsZero() && !rotated.IsZero() && revoked.IsZero() &&
		!rotated.Before(since) && now.Before(expires)
}

// RevokeGrant implements store.Store.
func (s *Store) RevokeGrant(ctx context.Context, tenantID, grantID string, now time.Time, ev *store.AuditEvent) error {
	if grantID == "" {
		return wrap("revoke grant", store.ErrInvalid)
	}
	evRow := prepAudit(ev)
	return wrap("revoke grant", s.w.do(ctx, func(tx *wtx) error {
		revoked, err := tx.revokeGrant(tenantID, grantID, now)
		if err != nil || !revoked {
			return err
		}
		return tx.audit(evRow)
	}))
}

// RevokeClientTokens implements store.Store.
func (s *Store) RevokeClientTokens(ctx context.Context, tenantID, clientID string, now time.Time, ev *store.AuditEvent) error {
	at := tv(now)
	evRow := prepAudit(ev)
	return wrap("revoke client tokens", s.w.do(ctx, func(tx *wtx) error {
		for _, q := range []string{qRevokeClientRefresh, qRevokeClientAccess} {
			if _, err := tx.exec(q, at, tenantID, clientID); err != nil {
				return err
			}
		}
		return tx.audit(evRow)
	}))
}

// RevokeUserAccess implements store.Store.
func (s *Store) RevokeUserAccess(ctx context.Context, tenantID, userID string, now time.Time, ev *store.AuditEvent) error {
	at := tv(now)
	evRow := prepAudit(ev)
	return wrap("revoke user access", s.w.do(ctx, func(tx *wtx) error {
		for _, st := range []struct {
			q    string
			args []any
		}{
			{qDeleteUserSessions, []any{tenantID, userID}},
			{qDeleteUserPendingCodes, []any{tenantID, userID}},
			{qMarkUserCodesRevoked, []any{at, tenantID, userID}},
			{qRevokeUserRefresh, []any{at, tenantID, userID}},
			{qRevokeUserAccess, []any{at, tenantID, userID}},
		} {
			if _, err := tx.exec(st.q, st.args...); err != nil {
				return err
			}
		}
		return tx.audit(evRow)
	}))
}

// RevokeAccessToken implements store.Store.
func (s *Store) RevokeAccessToken(ctx context.Context, at *store.AccessToken, now time.Time, ev *store.AuditEvent) error {
	evRow := prepAudit(ev)
	args := accessArgs(at, now.UnixMicro())
	return wrap("revoke access token", s.w.do(ctx, func(tx *wtx) error {
		if _, err := tx.exec(qRevokeAccess, args...); err != nil {
			return err
		}
		return tx.audit(evRow)
	}))
}

// AccessTokenRevoked implements store.Store. An unknown jti is not revoked.
func (s *Store) AccessTokenRevoked(ctx context.Context, jti string) (bool, error) {
	row, err := s.queryRow(ctx, qAccessRevoked, jti)
	if err != nil {
		return false, wrap("access token revoked", err)
	}
	var revoked bool
	switch err := row.Scan(&revoked); {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, wrap("access token revoked", err)
	}
	return revoked, nil
}

// UseJTI implements store.Store.
func (s *Store) UseJTI(ctx context.Context, key, jti string, exp, now time.Time) error {
	return wrap("use jti", s.w.do(ctx, func(tx *wtx) error {
		n, err := tx.execN(qUseJTI, key, jti, exp.UnixMicro(), now.UnixMicro())
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrConflict
		}
		return nil
	}))
}

// DeleteExpired implements store.Store.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time) error {
	cutoff := now.UnixMicro()
	return wrap("delete expired", s.w.do(ctx, func(tx *wtx) error {
		for _, q := range []string{
			`DELETE FROM auth_codes WHERE expires_at < ?`,
			`DELETE FROM refresh_tokens WHERE expires_at < ?`,
			`DELETE FROM access_tokens WHERE expires_at < ?`,
			`DELETE FROM sessions WHERE expires_at < ?`,
			`DELETE FROM used_jtis WHERE expires_at < ?`,
			// A rotated-out API key is destroyed once its overlap ended.
			`UPDATE connections SET previous_secret = NULL, previous_until = NULL
			 WHERE previous_until IS NOT NULL AND previous_until < ?`,
		} {
			if _, err := tx.exec(q, cutoff); err != nil {
				return err
			}
		}
		return nil
	}))
}
