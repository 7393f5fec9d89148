package sink

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// Format is how a sink encodes an event.
type Format string

const (
	// FormatNative is agentid's own form (audit.Record, as `agentid audit
	// export --format ndjson` writes it) with the event's chain link.
	FormatNative Format = "native"
	// FormatOCSF is the event's OCSF 1.8.0 form (audit.OCSF), with the
	// chain link in unmapped.
	FormatOCSF Format = "ocsf"
)

// nativeRecord is audit.Record with the event's place in the hash chain,
// so that a receiver holding the whole stream can check it.
type nativeRecord struct {
	audit.Record
	PrevHash string `json:"prev_hash,omitempty"`
	Hash     string `json:"hash,omitempty"`
}

// encode renders ev (already masked) in format f as one JSON object.
func encode(f Format, ev *store.AuditEvent, l *store.AuditLink) ([]byte, error) {
	if f == FormatOCSF {
		o := audit.OCSF(ev)
		if u, ok := o["unmapped"].(map[string]any); ok && l.Sealed() {
			u["chain_prev_hash"] = hex.EncodeToString(l.PrevHash)
			u["chain_hash"] = hex.EncodeToString(l.Hash)
		}
		return json.Marshal(o)
	}
	return json.Marshal(nativeRecord{Record: audit.RecordOf(ev), PrevHash: hex.EncodeToString(l.PrevHash), Hash: hex.EncodeToString(l.Hash)})
}

// Fields a sink may mask (Config.Mask): the columns ip and user_id, and
// any details key as details.<key> (details.os_user, details.owner_id).
const (
	MaskIP   = "ip"
	MaskUser = "user_id"
)

// CheckMask reports the first field in mask that cannot be masked.
func CheckMask(mask []string) error {
	for _, m := range mask {
		k, isDetail := strings.CutPrefix(m, "details.")
		if m != MaskIP && m != MaskUser && (!isDetail || k == "") {
			return fmt.Errorf("cannot mask %q: want ip, user_id or details.<key>", m)
		}
	}
	return nil
}

// masker hides the configured fields of an event for one sink. A masked
// address keeps its network (IPv4 /24, IPv6 /48), so a SIEM still sees
// where requests came from; a masked value that is an email address keeps
// its first character and its domain (a***@example.com); any other value
// becomes "***". The chain hashes a sink sends are of the stored event,
// so a masked stream cannot be re-hashed (the hashes still order it).
type masker struct {
	ip, user bool
	details  []string
}

func newMasker(mask []string) *masker {
	m := &masker{}
	for _, f := range mask {
		switch f {
		case MaskIP:
			m.ip = true
		case MaskUser:
			m.user = true
		default:
			m.details = append(m.details, strings.TrimPrefix(f, "details."))
		}
	}
	return m
}

// apply returns ev with the fields masked: a copy when anything changes,
// ev itself otherwise (events are never modified in place).
func (m *masker) apply(ev *store.AuditEvent) *store.AuditEvent {
	if !m.ip && !m.user && len(m.details) == 0 {
		return ev
	}
	c := *ev
	c.Scopes = slices.Clone(ev.Scopes)
	c.Details = maps.Clone(ev.Details)
	if m.ip && c.IP != "" {
		c.IP = maskIP(c.IP)
	}
	if m.user && c.UserID != "" {
		c.UserID = maskValue(c.UserID)
	}
	for _, k := range m.details {
		if v, ok := c.Details[k]; ok && v != "" {
			c.Details[k] = maskValue(v)
		}
	}
	return &c
}

func maskIP(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "***"
	}
	bits := 48
	if a.Unmap().Is4() {
		a, bits = a.Unmap(), 24
	}
	p, _ := a.Prefix(bits)
	return p.String()
}

func maskValue(v string) string {
	if at := strings.LastIndexByte(v, '@'); at > 0 && at < len(v)-1 {
		r := []rune(v[:at])
		return string(r[0]) + "***" + v[at:]
	}
	return "***"
}
