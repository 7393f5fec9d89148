package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/audit/sink"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/store"
)

// newSinkDispatcher builds the audit trail's streaming sinks from the
// configuration; nil when none is configured.
func newSinkDispatcher(cfg *config.Config, st store.Store, holder string, log *slog.Logger) (*sink.Dispatcher, error) {
	if len(cfg.Audit.Sinks) == 0 {
		return nil, nil
	}
	var sinks []sink.Config
	var problems []error
	for i, sc := range cfg.Audit.Sinks {
		s, err := buildSink(sc)
		if err != nil {
			problems = append(problems, fmt.Errorf("audit.sinks[%d] (%s): %w", i, sc.Name, err))
			continue
		}
		sinks = append(sinks, sink.Config{
			Name: sc.Name, Type: sc.Type, Sink: s, Format: sink.Format(sc.Format), Mask: sc.Mask, Start: sc.Start,
			BatchSize: sc.BatchSize, MaxAttempts: sc.MaxAttempts,
			MinBackoff: time.Duration(sc.MinBackoff), MaxBackoff: time.Duration(sc.MaxBackoff),
		})
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	// The sinks' leases are named by this process's holder, as its job
	// leases are. They keep the dispatcher's own length (30 s): a batch's
	// delivery may take a sink's whole 10 s timeout between renewals, and
	// a lease that ran out mid-delivery would send the batch twice.
	return sink.New(sink.Options{Store: st, Sinks: sinks, Holder: holder, Logger: log})
}

// buildSink makes the sink a configuration entry describes.
func buildSink(sc config.AuditSink) (sink.Sink, error) {
	switch sc.Type {
	case config.SinkWebhook:
		return sink.NewWebhook(sink.HTTPOptions{URL: sc.URL, Secret: []byte(sc.Secret)})
	case config.SinkSplunkHEC:
		return sink.NewSplunkHEC(sink.HTTPOptions{URL: sc.URL, Secret: []byte(sc.Secret), Index: sc.Index}, sink.Format(sc.Format))
	case config.SinkSyslog:
		o := sink.SyslogOptions{Address: sc.Address, Facility: sc.Facility}
		if sc.TLS {
			o.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
			if sc.CAFile != "" {
				pem, err := config.ReadLimited(sc.CAFile, 1<<20)
				if err != nil {
					return nil, fmt.Errorf("ca_file: %w", err)
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					return nil, errors.New("ca_file holds no PEM certificate")
				}
				o.TLS.RootCAs = pool
			}
		}
		return sink.NewSyslog(o)
	case config.SinkFile:
		return sink.NewFile(sink.FileOptions{Path: sc.Path, MaxBytes: int64(sc.MaxBytes), MaxFiles: sc.MaxFiles})
	case config.SinkStdout:
		return sink.NewWriter(os.Stdout), nil
	}
	return nil, fmt.Errorf("unknown sink type %q", sc.Type)
}

// sinkStatus is one line of `agentid audit sinks`.
type sinkStatus struct {
	Name        string    `json:"name"`
	Type        string    `json:"type"`
	Cursor      int64     `json:"cursor"`
	LagEvents   int64     `json:"lag_events"`
	LagSeconds  int64     `json:"lag_seconds"`
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
	Failures    int       `json:"failures"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	DeadLetters int64     `json:"dead_letters"`
	Holder      string    `json:"holder,omitempty"`
}

// sinkStatuses joins the configured sinks with their state in the store:
// a configured sink that never ran shows cursor 0 and no lag; a sink in
// the store that is no longer configured is listed with type "(removed)".
func sinkStatuses(ctx context.Context, cfg *config.Config, st store.Store, now time.Time) ([]sinkStatus, error) {
	states, err := st.ListAuditSinks(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]*store.AuditSinkState{}
	for _, s := range states {
		byName[s.Name] = s
	}
	var out []sinkStatus
	line := func(name, typ string, s *store.AuditSinkState) sinkStatus {
		l := sinkStatus{Name: name, Type: typ}
		if s == nil {
			return l
		}
		l.Cursor, l.LagEvents, l.DeliveredAt, l.Failures = s.Cursor, s.Pending, s.DeliveredAt, s.Failures
		l.LastError, l.LastErrorAt, l.DeadLetters, l.Holder = s.LastError, s.LastErrorAt, s.DeadLetters, s.Holder
		if s.Pending > 0 && !s.OldestPending.IsZero() {
			l.LagSeconds = max(0, int64(now.Sub(s.OldestPending)/time.Second))
		}
		return l
	}
	for _, sc := range cfg.Audit.Sinks {
		out = append(out, line(sc.Name, sc.Type, byName[sc.Name]))
		delete(byName, sc.Name)
	}
	for _, s := range states {
		if byName[s.Name] != nil {
			out = append(out, line(s.Name, "(removed)", s))
		}
	}
	return out, nil
}

func (c *cli) newAuditSinksCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "sinks",
		Short: "Show each streaming sink's cursor, lag, last error and dead letters",
		Long: `Show each audit sink of the configuration (audit.sinks) as the store records
it: its type, cursor (the last event id delivered or dead-lettered), lag (events
of the trail after the cursor, and the age of the oldest of them), failed
attempts since the last delivery, the last error, and how many events it
dead-lettered. A sink that never ran shows no cursor.`,
		Example: "  agentid audit sinks\n  agentid audit sinks --json",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd, func(ctx context.Context, cfg *config.Config, st store.Store) error {
				lines, err := sinkStatuses(ctx, cfg, st, time.Now())
				if err != nil {
					return err
				}
				if *asJSON {
					if lines == nil {
						lines = []sinkStatus{}
					}
					return writeJSON(cmd.OutOrStdout(), lines)
				}
				if len(lines) == 0 {
					_, err := fmt.Fprintln(cmd.OutOrStdout(), "No audit sinks are configured (audit.sinks).")
					return err
				}
				t := newTable(cmd.OutOrStdout(), "NAME", "TYPE", "CURSOR", "LAG", "LAG_SECONDS", "DELIVERED", "FAILURES", "DEAD_LETTERS", "LAST_ERROR")
				for _, l := range lines {
					lastErr := l.LastError
					if lastErr != "" {
						lastErr = timeText(l.LastErrorAt) + " " + lastErr
					}
					t.row(l.Name, l.Type, strconv.FormatInt(l.Cursor, 10), strconv.FormatInt(l.LagEvents, 10),
						strconv.FormatInt(l.LagSeconds, 10), timeText(l.DeliveredAt), strconv.Itoa(l.Failures),
						strconv.FormatInt(l.DeadLetters, 10), lastErr)
				}
				return t.flush()
			})
		},
	}
}
