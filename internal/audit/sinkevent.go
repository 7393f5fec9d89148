package audit

import (
	"strconv"

	"github.com/agentid/agentid/internal/store"
)

// AuditSinkDeadLettered: a streaming sink gave up on a batch of events
// after its attempts (internal/audit/sink); the events stay in the trail
// but did not reach that sink. Outcome failure.
const AuditSinkDeadLettered = "audit.sink_dead_lettered"

func init() {
	required[AuditSinkDeadLettered] = struct {
		fields  []field
		details []string
	}{nil, []string{"sink", "sink_type", "first_id", "last_id", "dead_events", "attempts", "sink_error"}}
}

// SinkDeadLetterFields is what an audit.sink_dead_lettered event carries.
type SinkDeadLetterFields struct {
	Sink     string // the sink's configured name
	SinkType string // webhook, splunk_hec, syslog, file, stdout
	// FirstID and LastID bound the batch given up on; Events is how many
	// events it held.
	FirstID, LastID int64
	Events          int
	Attempts        int
	// Error is the last attempt's error as the sink reported it: a status
	// code or a network failure, never a URL's credentials or a token.
	Error string
}

// NewSinkDeadLettered records that a streaming sink gave up on the events
// FirstID..LastID: details sink, sink_type, first_id, last_id,
// dead_events, attempts and sink_error. It is written by the hub
// (ActorHub) in the transaction that moves the sink's cursor past them.
func NewSinkDeadLettered(m Meta, f SinkDeadLetterFields) *store.AuditEvent {
	ev := event(m, AuditSinkDeadLettered)
	ev.Outcome = Failure
	set(ev.Details, "sink", f.Sink)
	set(ev.Details, "sink_type", f.SinkType)
	ev.Details["first_id"] = strconv.FormatInt(f.FirstID, 10)
	ev.Details["last_id"] = strconv.FormatInt(f.LastID, 10)
	ev.Details["dead_events"] = strconv.Itoa(f.Events)
	ev.Details["attempts"] = strconv.Itoa(f.Attempts)
	set(ev.Details, "sink_error", f.Error)
	return done(ev)
}
