package sink

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/jsontext"
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

// appendEncoded appends ev (already masked) in format f, one JSON object.
func appendEncoded(b []byte, f Format, ev *store.AuditEvent, l *store.AuditLink) ([]byte, error) {
	if f == FormatOCSF {
		o := audit.OCSF(ev)
		if u, ok := o["unmapped"].(map[string]any); ok && l.Sealed() {
			u["chain_prev_hash"] = hex.EncodeToString(l.PrevHash)
			u["chain_hash"] = hex.EncodeToString(l.Hash)
		}
		j, err := json.Marshal(o)
		return append(b, j...), err
	}
	return appendNative(b, ev, l), nil
}

// appendNative appends ev's native form: the JSON encoding of
// nativeRecord, written directly because reflection-based encoding was a
// third of a sink's CPU per event (TestNativeEncoding checks they agree).
// It allocates nothing beyond b's growth when the event has at most 32
// details. The details of an event not masked are the text the store
// kept for them (l.DetailsJSON, the same bytes), when it has it.
func appendNative(b []byte, ev *store.AuditEvent, l *store.AuditLink) []byte {
	field := func(name, v string, always bool) {
		if v == "" && !always {
			return
		}
		b = append(b, ',', '"')
		b = append(b, name...)
		b = append(b, '"', ':')
		b = jsontext.AppendString(b, v)
	}
	hexField := func(name string, v []byte) {
		if len(v) == 0 {
			return
		}
		b = append(b, ',', '"')
		b = append(b, name...)
		b = append(b, '"', ':', '"')
		b = hex.AppendEncode(b, v)
		b = append(b, '"')
	}
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, ev.ID, 10)
	b = append(b, `,"time":"`...)
	b = ev.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	field("tenant_id", ev.TenantID, true)
	field("type", ev.Type, true)
	field("outcome", ev.Outcome, true)
	field("client_id", ev.ClientID, false)
	field("user_id", ev.UserID, false)
	field("resource", ev.Resource, false)
	if len(ev.Scopes) > 0 {
		b = append(b, `,"scopes":[`...)
		for i, sc := range ev.Scopes {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsontext.AppendString(b, sc)
		}
		b = append(b, ']')
	}
	field("ip", ev.IP, false)
	field("request_id", ev.RequestID, false)
	if j := l.DetailsJSON; j != "" && ev == l.Event {
		if j != "{}" {
			b = append(b, `,"details":`...)
			b = append(b, j...)
		}
	} else if d := ev.StoredDetails(); len(d) > 0 {
		b = append(b, `,"details":`...)
		b = jsontext.AppendObject(b, d)
	}
	hexField("prev_hash", l.PrevHash)
	hexField("hash", l.Hash)
	return append(b, '}')
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

// masker hides the configured fields of an event for one sink (user_id
// also where a detail repeats it). A masked
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
		// A detail that repeats the user's id (a connection's owner_id)
		// is the same personal data: masked with it.
		for k, v := range c.Details {
			if v == c.UserID {
				c.Details[k] = maskValue(v)
			}
		}
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
