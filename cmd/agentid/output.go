package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// Output is a readable, aligned table by default and JSON with --json, for
// scripts. JSON field names are stable; lists are always arrays (never
// null) and absent times are omitted.

// addJSONFlag registers --json on a command group; its subcommands inherit it.
func addJSONFlag(cmd *cobra.Command, v *bool) {
	cmd.PersistentFlags().BoolVar(v, "json", false, "print JSON instead of a table")
}

// writeJSON writes v as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

// row writes one line. Cells are sanitised: a tab, newline or other control
// character (which could forge rows or terminal escapes) becomes a space,
// and an empty cell shows "-".
func (t *table) row(cells ...string) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		fmt.Fprint(t.tw, cell(c))
	}
	fmt.Fprint(t.tw, "\n")
}

func (t *table) flush() error { return t.tw.Flush() }

func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
}

// list renders a string list for a table cell.
func list(xs []string) string { return strings.Join(xs, ",") }

// timeText renders a time for a table cell: RFC 3339 in UTC, "-" for zero.
func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// optTime is t for JSON, nil (omitted) when zero.
func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// strs returns xs, or an empty list for nil, so JSON shows [] not null.
func strs(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}
