package audit

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// Audit chain event types: the trail recording its own integrity (see
// store.ChainHash, Sealer, Verify and Prune).
const (
	// AuditCheckpoint: the sealer signed a tenant's chain head with the
	// hub's signing key. It enters the chain like any event.
	AuditCheckpoint = "audit.checkpoint"
	// AuditPruned: an administrator removed the events before an anchor,
	// which the event names and signs so that the kept trail still
	// verifies.
	AuditPruned = "audit.pruned"
	// AuditVerified: an administrator walked the chain (agentid audit
	// verify); outcome failure when it found a break.
	AuditVerified = "audit.verified"
)

func init() {
	for typ, spec := range map[string]struct {
		fields  []field
		details []string
	}{
		AuditCheckpoint: {nil, []string{"head_id", "head_hash", "signature"}},
		AuditPruned:     {nil, []string{"before", "deleted", "anchor_id", "anchor_prev_hash", "signature"}},
		AuditVerified:   {nil, []string{"events", "unsealed"}},
	} {
		required[typ] = spec
	}
}

// CheckpointClaims is the payload of a checkpoint's JWS: a chain head
// (checkpoints) or the anchor a prune kept (audit.pruned). Hashes are hex.
type CheckpointClaims struct {
	Issuer         string `json:"iss,omitempty"`
	TenantID       string `json:"tenant"`
	HeadID         int64  `json:"head_id,omitempty"`
	HeadHash       string `json:"head_hash,omitempty"`
	AnchorID       int64  `json:"anchor_id,omitempty"`
	AnchorPrevHash string `json:"anchor_prev_hash,omitempty"`
	IssuedAt       int64  `json:"iat"`
}

// CheckpointSigner signs a checkpoint payload (a JSON object) as a
// compact JWS with the hub's current signing key; token.Keys is one.
type CheckpointSigner interface {
	SignCheckpoint(payload []byte) (string, error)
}

// CheckpointVerifier checks a checkpoint JWS and returns its payload. A
// checkpoint signed by a key it does not hold is an error wrapping
// ErrUnknownKey.
type CheckpointVerifier func(jws string) ([]byte, error)

// ErrUnknownKey: a checkpoint names a key the verifier does not hold.
var ErrUnknownKey = errors.New("audit: checkpoint signed by an unknown key")

// sign encodes c and signs it.
func sign(s CheckpointSigner, c CheckpointClaims) (jws, kid string, err error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", "", err
	}
	jws, err = s.SignCheckpoint(payload)
	if err != nil {
		return "", "", fmt.Errorf("signing the checkpoint: %w", err)
	}
	return jws, headerKID(jws), nil
}

// headerKID reads the kid of a compact JWS we just made, for the event's
// details (verification reads it again from the signed header).
func headerKID(jws string) string {
	h, _, _ := strings.Cut(jws, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return ""
	}
	var v struct {
		KID string `json:"kid"`
	}
	_ = json.Unmarshal(b, &v)
	return v.KID
}

// CheckpointFields is what an audit.checkpoint event carries.
type CheckpointFields struct {
	HeadID    int64
	HeadHash  []byte
	Signature string // compact JWS over CheckpointClaims
	KID       string
}

// NewCheckpoint records a signed chain head of m's tenant: details
// head_id, head_hash (hex), kid and signature (the JWS, whose payload
// repeats the head).
func NewCheckpoint(m Meta, f CheckpointFields) *store.AuditEvent {
	ev := event(m, AuditCheckpoint)
	if f.HeadID > 0 {
		ev.Details["head_id"] = strconv.FormatInt(f.HeadID, 10)
	}
	set(ev.Details, "head_hash", hex.EncodeToString(f.HeadHash))
	set(ev.Details, "kid", f.KID)
	set(ev.Details, "signature", f.Signature)
	return done(ev)
}

// PrunedFields is what an audit.pruned event carries.
type PrunedFields struct {
	Before         time.Time // the cut-off the administrator asked for
	Deleted        int64
	AnchorID       int64 // the first kept event
	AnchorPrevHash []byte
	Signature      string // compact JWS over CheckpointClaims with the anchor
	KID            string
}

// NewPruned records that the events of m's tenant before the anchor were
// deleted: details before (RFC 3339), deleted, anchor_id,
// anchor_prev_hash (hex), kid and signature.
func NewPruned(m Meta, f PrunedFields) *store.AuditEvent {
	ev := event(m, AuditPruned)
	if !f.Before.IsZero() {
		ev.Details["before"] = f.Before.UTC().Format(time.RFC3339Nano)
	}
	ev.Details["deleted"] = strconv.FormatInt(f.Deleted, 10)
	if f.AnchorID > 0 {
		ev.Details["anchor_id"] = strconv.FormatInt(f.AnchorID, 10)
	}
	set(ev.Details, "anchor_prev_hash", hex.EncodeToString(f.AnchorPrevHash))
	set(ev.Details, "kid", f.KID)
	set(ev.Details, "signature", f.Signature)
	return done(ev)
}

// NewVerified records a walk of m's tenant's chain (Verify): outcome
// success, or failure with break_id and break_reason when it found a
// break; details events (sealed events checked), unsealed, checkpoints.
func NewVerified(m Meta, r *Report) *store.AuditEvent {
	ev := event(m, AuditVerified)
	ev.Details["events"] = strconv.FormatInt(r.Events, 10)
	ev.Details["unsealed"] = strconv.FormatInt(r.Unsealed, 10)
	ev.Details["checkpoints"] = strconv.Itoa(r.Checkpoints)
	if r.Break != nil {
		ev.Outcome = Failure
		ev.Details["break_id"] = strconv.FormatInt(r.Break.EventID, 10)
		set(ev.Details, "break_reason", r.Break.Reason)
	}
	return done(ev)
}
