package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// Report is what Verify found in one tenant's chain.
type Report struct {
	TenantID string
	// Events is how many sealed events were checked; FirstID and HeadID
	// the first and last of them.
	Events          int64
	FirstID, HeadID int64
	// AnchorID is the first event when the trail was pruned before it
	// (its prev_hash vouched for by a signed audit.pruned event).
	AnchorID int64
	// Checkpoints is how many checkpoint signatures verified;
	// SignedThrough the newest head one of them covers. Unverifiable
	// counts checkpoints signed by keys the store no longer holds.
	Checkpoints   int
	SignedThrough int64
	Unverifiable  int
	// Unsealed is the length of the tail from the first event after the
	// head that is not sealed yet: counted, not checked (a sealer may be
	// linking it while Verify reads).
	Unsealed int64
	// Break is the first problem, nil when the chain is whole.
	Break *Break
}

// Break is the first place a chain fails to verify.
type Break struct {
	EventID int64
	Reason  string
}

func (b *Break) Error() string { return fmt.Sprintf("event %d: %s", b.EventID, b.Reason) }

// VerifyOptions configure Verify. Store and Verifier are required.
type VerifyOptions struct {
	Store    ChainStore
	TenantID string // default store.DefaultTenant
	Verifier CheckpointVerifier
}

const verifyPage = 1000

// Verify walks the tenant's chain in id order from its first event and
// recomputes every hash (store.ChainHash). The first event must follow
// store.ChainGenesis, or be the anchor named by the newest signed
// audit.pruned event. Each event's prev_hash must be its predecessor's
// hash and its hash must match its content; every checkpoint and prune
// signature must verify and agree with its event's details, and a
// checkpoint's head must still have the hash it signed; no event behind
// the head may be unsealed; the walk must end at the recorded head (read
// again when a sealer moved it meanwhile: it must not be behind the walk).
// From the first unsealed event after the head on, events are counted as
// the unsealed tail, not checked. The first failure is the report's Break;
// the error is for failures to read the store.
func Verify(ctx context.Context, opts VerifyOptions) (*Report, error) {
	if opts.Store == nil || opts.Verifier == nil {
		return nil, errors.New("audit: VerifyOptions.Store and Verifier are required")
	}
	tn := opts.TenantID
	if tn == "" {
		tn = store.DefaultTenant
	}
	v := &verifier{opts: opts, r: &Report{TenantID: tn}}
	head, err := opts.Store.AuditHead(ctx, tn)
	switch {
	case errors.Is(err, store.ErrNotFound):
		head = nil
	case err != nil:
		return nil, err
	}
	var prev []byte
	var after int64
	for v.r.Break == nil {
		page, err := opts.Store.AuditLinks(ctx, tn, after, verifyPage)
		if err != nil {
			return nil, err
		}
		for _, l := range page {
			if err := v.link(ctx, head, l, &prev); err != nil {
				return nil, err
			}
			if v.r.Break != nil {
				break
			}
		}
		if len(page) < verifyPage {
			break
		}
		after = page[len(page)-1].Event.ID
	}
	if v.r.Break != nil {
		return v.r, nil
	}
	if err := v.end(ctx, head); err != nil {
		return nil, err
	}
	return v.r, nil
}

// end checks that the walk ended at the chain head read before it. A
// sealer may have moved the head since, linking events the walk saw
// sealed (then the head is read again and must not be behind the walk)
// or events it had already passed as the unsealed tail.
func (v *verifier) end(ctx context.Context, head *store.ChainHead) error {
	if head != nil && (v.r.HeadID < head.ID || (v.r.HeadID == head.ID && !bytes.Equal(v.last, head.Hash))) {
		v.fail(head.ID, fmt.Sprintf("the chain head is event %d, but the trail's last sealed event is %d: sealed events were deleted or changed", head.ID, v.r.HeadID))
		return nil
	}
	if v.r.Events > 0 && (head == nil || v.r.HeadID > head.ID) {
		h, err := v.opts.Store.AuditHead(ctx, v.r.TenantID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			v.fail(v.r.FirstID, "events are sealed but the tenant has no chain head")
			return nil
		case err != nil:
			return err
		}
		if h.ID < v.r.HeadID || (h.ID == v.r.HeadID && !bytes.Equal(v.last, h.Hash)) {
			v.fail(v.r.HeadID, fmt.Sprintf("sealed, yet beyond the chain head (event %d): the head was moved back or links were forged", h.ID))
			return nil
		}
	}
	if v.lastUnverifiable > v.lastVerified {
		v.fail(v.lastUnverifiable, "the newest checkpoint is signed by a key the store no longer holds, and no later one verifies")
	}
	return nil
}

type verifier struct {
	opts VerifyOptions
	r    *Report
	// tail: the walk met an unsealed event after the head; what follows
	// is counted, not checked (a sealer may be linking it right now).
	tail             bool
	last             []byte // hash of the last checked event
	lastVerified     int64  // id of the newest checkpoint that verified
	lastUnverifiable int64
}

func (v *verifier) fail(id int64, reason string) {
	if v.r.Break == nil {
		v.r.Break = &Break{EventID: id, Reason: reason}
	}
}

// link checks one event, given the hash of its predecessor in *prev.
func (v *verifier) link(ctx context.Context, head *store.ChainHead, l *store.AuditLink, prev *[]byte) error {
	id := l.Event.ID
	if v.tail {
		v.r.Unsealed++
		if !l.Sealed() {
			return v.signed(ctx, l, false)
		}
		return nil
	}
	if !l.Sealed() {
		if head != nil && id <= head.ID {
			v.fail(id, fmt.Sprintf("not sealed, yet behind the chain head (event %d): it was committed after later events were sealed, or its link was deleted", head.ID))
			return nil
		}
		v.tail = true
		v.r.Unsealed++
		// An unsealed checkpoint or prune is not covered by the chain
		// yet, but its own signature must hold.
		return v.signed(ctx, l, false)
	}
	if v.r.Events == 0 {
		v.r.FirstID = id
		if !bytes.Equal(l.PrevHash, store.ChainGenesis) {
			ok, err := v.anchored(ctx, l)
			if err != nil || !ok {
				return err
			}
			v.r.AnchorID = id
		}
	} else if !bytes.Equal(l.PrevHash, *prev) {
		v.fail(id, fmt.Sprintf("prev_hash is not the hash of the previous event (%d): an event between them was deleted, or events were reordered", v.r.HeadID))
		return nil
	}
	if !bytes.Equal(store.ChainHash(l.PrevHash, l.Event), l.Hash) {
		v.fail(id, "the hash does not match the event's content: the event was changed after it was sealed")
		return nil
	}
	*prev = l.Hash
	v.last = l.Hash
	v.r.Events++
	v.r.HeadID = id
	return v.signed(ctx, l, true)
}

// anchored reports whether the first event l, which does not follow the
// genesis, is the anchor of the newest signed prune.
func (v *verifier) anchored(ctx context.Context, l *store.AuditLink) (bool, error) {
	const why = "the trail starts here, after events that no signed prune accounts for: events before it were deleted"
	pruned, err := v.opts.Store.ListAudit(ctx, store.AuditFilter{TenantID: v.r.TenantID, Type: AuditPruned, Limit: 1})
	if err != nil {
		return false, err
	}
	if len(pruned) == 0 {
		v.fail(l.Event.ID, why)
		return false, nil
	}
	c, reason := v.claims(pruned[0])
	if reason != "" {
		v.fail(pruned[0].ID, reason)
		return false, nil
	}
	if c.AnchorID != l.Event.ID || c.AnchorPrevHash != hex.EncodeToString(l.PrevHash) {
		v.fail(l.Event.ID, why)
		return false, nil
	}
	return true, nil
}

// signed checks the signature of a checkpoint or prune event; walked
// means every event before it has been checked, so a checkpoint's head
// can be compared with the trail.
func (v *verifier) signed(ctx context.Context, l *store.AuditLink, walked bool) error {
	ev := l.Event
	if ev.Type != AuditCheckpoint && ev.Type != AuditPruned {
		return nil
	}
	c, reason := v.claims(ev)
	if errors.Is(c.err, ErrUnknownKey) {
		v.r.Unverifiable++
		v.lastUnverifiable = ev.ID
		return nil
	}
	if reason != "" {
		v.fail(ev.ID, reason)
		return nil
	}
	if ev.Type == AuditPruned {
		return nil
	}
	v.r.Checkpoints++
	v.lastVerified = ev.ID
	if walked && c.HeadID >= v.r.FirstID && c.HeadID < ev.ID {
		at, err := v.opts.Store.AuditLinks(ctx, v.r.TenantID, c.HeadID-1, 1)
		if err != nil {
			return err
		}
		if len(at) == 0 || at[0].Event.ID != c.HeadID || hex.EncodeToString(at[0].Hash) != c.HeadHash {
			v.fail(ev.ID, fmt.Sprintf("the checkpoint signed event %d with a hash the trail no longer has", c.HeadID))
			return nil
		}
	}
	v.r.SignedThrough = max(v.r.SignedThrough, c.HeadID)
	return nil
}

// verifiedClaims are a signed event's claims, or why they are not.
type verifiedClaims struct {
	CheckpointClaims
	err error
}

// claims verifies ev's signature and that its details say what it signed.
func (v *verifier) claims(ev *store.AuditEvent) (verifiedClaims, string) {
	var out verifiedClaims
	payload, err := v.opts.Verifier(ev.Details["signature"])
	if err != nil {
		out.err = err
		return out, fmt.Sprintf("the %s signature does not verify: %v", ev.Type, err)
	}
	if err := json.Unmarshal(payload, &out.CheckpointClaims); err != nil {
		return out, fmt.Sprintf("the %s payload does not parse", ev.Type)
	}
	c := out.CheckpointClaims
	d := ev.Details
	same := c.TenantID == ev.TenantID
	if ev.Type == AuditCheckpoint {
		same = same && d["head_id"] == strconv.FormatInt(c.HeadID, 10) && d["head_hash"] == c.HeadHash
	} else {
		same = same && d["anchor_id"] == strconv.FormatInt(c.AnchorID, 10) && d["anchor_prev_hash"] == c.AnchorPrevHash
	}
	if !same {
		return out, fmt.Sprintf("the %s details differ from what its signature covers", ev.Type)
	}
	return out, ""
}

// PruneOptions configure Prune. Store and Signer are required.
type PruneOptions struct {
	Store    ChainStore
	Signer   CheckpointSigner
	Issuer   string
	TenantID string // default store.DefaultTenant
	// Before: events older than this go, up to the first event that is
	// not (or is not sealed, or is the chain head, which always stays).
	Before time.Time
	// Meta is the administrator's request (time, actor).
	Meta Meta
}

// PruneResult is what Prune did.
type PruneResult struct {
	Deleted  int64
	AnchorID int64 // the first kept event; 0 when there was nothing to keep
	Event    *store.AuditEvent
}

// Prune deletes the tenant's oldest events, all older than Before, and in
// the same transaction writes an audit.pruned event naming and signing the
// first kept event and its prev_hash, so that Verify still accepts the
// kept trail. Only a prefix of sealed events goes; the chain head stays.
func Prune(ctx context.Context, opts PruneOptions) (*PruneResult, error) {
	if opts.Store == nil || opts.Signer == nil {
		return nil, errors.New("audit: PruneOptions.Store and Signer are required")
	}
	tn := opts.TenantID
	if tn == "" {
		tn = store.DefaultTenant
	}
	head, err := opts.Store.AuditHead(ctx, tn)
	if errors.Is(err, store.ErrNotFound) {
		return &PruneResult{}, nil // nothing sealed: nothing may go
	}
	if err != nil {
		return nil, err
	}
	var keep *store.AuditLink
	var after int64
walk:
	for {
		page, err := opts.Store.AuditLinks(ctx, tn, after, verifyPage)
		if err != nil {
			return nil, err
		}
		for _, l := range page {
			if !l.Sealed() {
				break walk // keep the last sealed one before it
			}
			keep = l
			if !l.Event.Time.Before(opts.Before) || l.Event.ID >= head.ID {
				break walk
			}
		}
		if len(page) < verifyPage {
			break
		}
		after = page[len(page)-1].Event.ID
	}
	if keep == nil {
		return &PruneResult{}, nil
	}
	m := opts.Meta.Stamped(tn, time.Now())
	m.TenantID = tn
	jws, kid, err := sign(opts.Signer, CheckpointClaims{
		Issuer: opts.Issuer, TenantID: tn, AnchorID: keep.Event.ID,
		AnchorPrevHash: hex.EncodeToString(keep.PrevHash), IssuedAt: m.Time.Unix(),
	})
	if err != nil {
		return nil, err
	}
	res := &PruneResult{AnchorID: keep.Event.ID}
	n, err := opts.Store.PruneAudit(ctx, store.AuditPrune{TenantID: tn, Keep: keep.Event.ID, PrevHash: keep.PrevHash},
		func(deleted int64) *store.AuditEvent {
			res.Event = NewPruned(m, PrunedFields{Before: opts.Before, Deleted: deleted, AnchorID: keep.Event.ID,
				AnchorPrevHash: keep.PrevHash, Signature: jws, KID: kid})
			return res.Event
		})
	if err != nil {
		return nil, err
	}
	res.Deleted = n
	return res, nil
}
