package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// The settings table of docs/configuration.md is generated from the schema
// (the Config struct: paths, environment variables, built-in defaults)
// and settingDocs below (what the struct cannot say: derived defaults,
// allowed values as Validate enforces them). TestConfigurationReference
// fails when the document differs from ReferenceTable; TestSettingDocBounds
// checks every bound and enumeration here against Load.

// settingDoc is what the reference table says of a setting beyond the
// schema.
type settingDoc struct {
	// Default replaces the built-in value for a default derived from
	// other settings.
	Default string
	// Min and Max bound a duration or integer, inclusive ("" = none).
	Min, Max string
	// ZeroOK: 0 is accepted besides [Min, Max] (0 means "off" or "never").
	ZeroOK bool
	// Enum lists the accepted values of a string setting.
	Enum []string
	// Note is a short remark in markdown.
	Note string
}

var settingDocs = map[string]settingDoc{
	"issuer":                                 {Default: "derived from `listen`: `http://127.0.0.1:8080`", Note: "https; http only on a loopback host"},
	"tls.cert_file":                          {Default: "— (TLS off)", Note: "with `tls.key_file`; reloaded when the files change"},
	"tls.key_file":                           {Note: "with `tls.cert_file`"},
	"metrics.listen":                         {Default: "— (metrics off)", Note: "Prometheus `/metrics`; not `listen`"},
	"metrics.pprof":                          {Note: "Go profiles at `/debug/pprof/` on `metrics.listen`"},
	"tracing.endpoint":                       {Default: "— (tracing off)", Note: "OTLP/HTTP receiver; https, http on loopback or with `tracing.insecure`; see [`tracing`](#tracing)"},
	"tracing.insecure":                       {Note: "http to a host other than loopback"},
	"tracing.sampling_ratio":                 {Note: "0 – 1; a sampled `traceparent` is always traced"},
	"tracing.headers":                        {Note: "`name=value,…`; `env:NAME` only in the file; printed `REDACTED`"},
	"tracing.headers_file":                   {Note: "file holding `tracing.headers`"},
	"trusted_proxies":                        {Default: "`[]` (`X-Forwarded-For` ignored)", Note: "see [`trusted_proxies`](#trusted_proxies)"},
	"store.dsn":                              {Default: "`<data_dir>/agentid.db` (SQLite)", Note: "`postgres://…` selects PostgreSQL"},
	"kek.file":                               {Default: "`<data_dir>/kek.key` (when `kek.value` is unset)"},
	"tokens.access_token_ttl":                {Min: "1s", Max: "1h"},
	"tokens.refresh_token_ttl":               {Min: "1m"},
	"tokens.refresh_token_reuse_interval":    {Min: "0s", Max: "1m", Note: "0: strict"},
	"tokens.auth_code_ttl":                   {Min: "1s", Max: "1m"},
	"tokens.signing_alg":                     {Enum: []string{"ES256", "EdDSA", "RS256"}},
	"tokens.key_pre_publish":                 {Min: "1s"},
	"tokens.max_delegation_depth":            {Min: "1", Max: "16"},
	"registration.mode":                      {Default: "`open`", Enum: []string{"open", "token", "off"}},
	"registration.enabled":                   {Note: "replaced by `mode`"},
	"registration.open":                      {Note: "replaced by `mode`"},
	"registration.initial_access_token_file": {Note: "required in mode `token`"},
	"registration.max_per_ip":                {Min: "1"},
	"registration.max_total":                 {Min: "1"},
	"registration.rate_window":               {Min: "1s"},
	"registration.client_expiry":             {Min: "1h", ZeroOK: true, Note: "0: never"},
	"cimd.allow_loopback":                    {Note: "only with a loopback `listen`"},
	"login.session_ttl":                      {Min: "1m"},
	"login.max_attempts_per_user":            {Min: "1"},
	"login.max_attempts_per_ip":              {Min: "1"},
	"login.attempt_window":                   {Min: "1s"},
	"login.local":                            {Note: "`false`: connectors only"},
	"login.allow_loopback_connectors":        {Note: "only with a loopback `listen`"},
	"consent.self_registered_default":        {Min: "1m"},
	"consent.step_up_sensitive_default":      {Min: "1m"},
	"identity_assertions.lifetime":           {Min: "30s", Max: "1h"},
	"log.level":                              {Enum: []string{"debug", "info", "warn", "error"}},
	"log.format":                             {Enum: []string{"json", "text"}},
	// Lists, set in the file only.
	"kek.previous_files":          {Note: "key files of previous KEKs"},
	"trusted_issuers":             {Note: "see [`trusted_issuers`](#trusted_issuers)"},
	"connectors":                  {Note: "see [`connectors`](#connectors)"},
	"audit.sinks":                 {Note: "see [`audit`](#audit)"},
	"identity_assertions.targets": {Note: "see [`identity_assertions`](#identity_assertions)"},
}

// refRow is one row of the reference table.
type refRow struct {
	path     string
	env      string // "" for a list (file only)
	typ      reflect.Type
	index    []int
	fileOnly bool
}

// referenceRows lists every setting, lists included, in declaration order.
func referenceRows() []refRow {
	var out []refRow
	var walk func(t reflect.Type, path []string, index []int)
	walk = func(t reflect.Type, path []string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := yamlName(f)
			if name == "" {
				continue
			}
			p := append(append([]string(nil), path...), name)
			idx := append(append([]int(nil), index...), i)
			switch {
			case f.Type.Kind() == reflect.Slice:
				out = append(out, refRow{path: strings.Join(p, "."), typ: f.Type, index: idx, fileOnly: true})
			case isSection(f.Type):
				walk(f.Type, p, idx)
			default:
				out = append(out, refRow{path: strings.Join(p, "."), env: envPrefix + strings.ToUpper(strings.Join(p, "_")), typ: f.Type, index: idx})
			}
		}
	}
	walk(reflect.TypeFor[Config](), nil, nil)
	return out
}

// ReferenceTable renders the settings table of docs/configuration.md.
func ReferenceTable() string {
	var b strings.Builder
	b.WriteString("| setting | default | allowed | environment variable |\n|---|---|---|---|\n")
	defaults := reflect.ValueOf(base()).Elem()
	for _, r := range referenceRows() {
		d := settingDocs[r.path]
		def := d.Default
		if def == "" {
			def = defaultCell(defaults.FieldByIndex(r.index))
		}
		env := "`" + r.env + "`"
		if alias, ok := envAliases[r.path]; ok {
			env += " (alias `" + alias + "`)"
		}
		if r.fileOnly {
			env = "— (file only)"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", r.path, def, allowedCell(d), env)
	}
	return b.String()
}

func defaultCell(v reflect.Value) string {
	if v.IsZero() {
		if v.Kind() == reflect.Slice {
			return "`[]`"
		}
		if v.Kind() == reflect.String {
			return "—"
		}
	}
	switch x := v.Interface().(type) {
	case Duration:
		return "`" + x.String() + "`"
	default:
		return fmt.Sprintf("`%v`", x)
	}
}

func allowedCell(d settingDoc) string {
	var parts []string
	switch {
	case len(d.Enum) > 0:
		parts = append(parts, "`"+strings.Join(d.Enum, "`, `")+"`")
	case d.Min != "" && d.Max != "":
		parts = append(parts, fmt.Sprintf("%s – %s", d.Min, d.Max))
	case d.Min != "":
		parts = append(parts, "≥ "+d.Min)
	case d.Max != "":
		parts = append(parts, "≤ "+d.Max)
	}
	if d.ZeroOK && len(parts) > 0 {
		parts[0] = "0 or " + parts[0]
	}
	if d.Note != "" {
		parts = append(parts, d.Note)
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, "; ")
}

// parseBound reads a Min or Max of a setting of type t.
func parseBound(t reflect.Type, s string) (int64, error) {
	if t == durationType {
		d, err := time.ParseDuration(s)
		return int64(d), err
	}
	var n int64
	_, err := fmt.Sscan(s, &n)
	return n, err
}
