package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/agentid/agentid/internal/jsontext"
	"github.com/agentid/agentid/internal/store"
)

// wtx is the writer's view of the open transaction. Statements are prepared
// once on the write connection and reused; only the writer goroutine uses it.
type wtx struct {
	w     *writer
	stmts map[string]*sql.Stmt
	// keep: the store seals, so the events this transaction writes are
	// kept (pending, in their stored form; nil where there is none) for
	// the tail once it commits.
	keep    bool
	pending []keptEvent
}

// startKeeping starts a transaction's list of events to keep afresh.
func (tx *wtx) startKeeping(keep bool) {
	clear(tx.pending)
	tx.pending, tx.keep = tx.pending[:0], keep
}

// kept notes an event the transaction wrote with id.
func (tx *wtx) kept(a auditRow, id int64) {
	if tx.keep {
		var details string
		if !a.coded {
			details = a.args[auditDetailsArg].(string)
		}
		tx.pending = append(tx.pending, keptEvent{storedForm(a.ev, id), details})
	}
}

// unkeep forgets the events noted after the first n (rolled back to a
// savepoint).
func (tx *wtx) unkeep(n int) {
	clear(tx.pending[n:])
	tx.pending = tx.pending[:n]
}

func (tx *wtx) stmt(q string) (*sql.Stmt, error) {
	if st := tx.stmts[q]; st != nil {
		return st, nil
	}
	st, err := tx.w.conn.PrepareContext(context.Background(), q)
	if err != nil {
		return nil, err
	}
	tx.stmts[q] = st
	return st, nil
}

func (tx *wtx) exec(q string, args ...any) (sql.Result, error) {
	st, err := tx.stmt(q)
	if err != nil {
		return nil, err
	}
	return st.Exec(args...)
}

// execN runs q and returns the number of rows it changed.
func (tx *wtx) execN(q string, args ...any) (int64, error) {
	res, err := tx.exec(q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (tx *wtx) queryRow(q string, args ...any) *sql.Row {
	st, err := tx.stmt(q)
	if err != nil {
		// A *sql.Row cannot be built with an error from outside the
		// package; run the query unprepared so the error surfaces on Scan.
		return tx.w.conn.QueryRowContext(context.Background(), q, args...)
	}
	return st.QueryRow(args...)
}

func (tx *wtx) query(q string, args ...any) (*sql.Rows, error) {
	st, err := tx.stmt(q)
	if err != nil {
		return nil, err
	}
	return st.Query(args...)
}

func (tx *wtx) closeStmts() {
	for q, st := range tx.stmts {
		st.Close()
		delete(tx.stmts, q)
	}
}

// stmtCache prepares read statements on the pool once (database/sql then
// prepares them on each pooled connection as it is first used there).
type stmtCache struct {
	db *sql.DB
	m  sync.Map // query → *sql.Stmt
	mu sync.Mutex
}

func (c *stmtCache) init(db *sql.DB) { c.db = db }

func (c *stmtCache) get(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := c.m.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	c.m.Store(q, st)
	return st, nil
}

func (c *stmtCache) close() error {
	var errs []error
	c.m.Range(func(k, v any) bool {
		errs = append(errs, v.(*sql.Stmt).Close())
		c.m.Delete(k)
		return true
	})
	return errors.Join(errs...)
}

// Reads come in two kinds. Point reads and the small lists on the token
// path (a client, a resource, a user's consents) take microseconds; the
// driver would spend more than that watching a cancelable context (a
// goroutine per statement to interrupt it), so they run detached from
// cancellation once they start. Admin listings, which can be long, stay
// cancelable.

// queryRow runs a prepared point read.
func (s *Store) queryRow(ctx context.Context, q string, args ...any) (*sql.Row, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := s.rstmt.get(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryRowContext(context.WithoutCancel(ctx), args...), nil
}

// queryShort runs a prepared read of a few rows, like queryRow.
func (s *Store) queryShort(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.query(context.WithoutCancel(ctx), q, args...)
}

// query runs a prepared, cancelable read.
func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := s.rstmt.get(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// ---- errors ----------------------------------------------------------------

// isConflict reports a violated PRIMARY KEY or UNIQUE constraint.
func isConflict(err error) bool {
	var e *msqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return true
	}
	return false
}

// isNotNull reports a violated NOT NULL constraint.
func isNotNull(err error) bool {
	var e *msqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_NOTNULL
}

// wrap adds the operation to err and maps driver errors onto the store's
// sentinels. Constraint messages name columns, never values, but the
// sentinel is all a caller needs, so it replaces the driver's text.
func wrap(op string, err error) error {
	var keep *errKeep
	switch {
	case err == nil:
		return nil
	case errors.As(err, &keep):
		return commitAnd(wrap(op, keep.err))
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: %s: %w", op, store.ErrNotFound)
	case isConflict(err):
		return fmt.Errorf("sqlite: %s: %w", op, store.ErrConflict)
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// ---- values ----------------------------------------------------------------

// tv stores a time as unix microseconds in UTC; the zero time is NULL.
func tv(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// bv stores a nil byte slice as NULL.
func bv(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// listText encodes a string list as JSON text; empty is "[]". Scopes, URIs
// and the like need no escaping, so they take a fast path that produces the
// same bytes encoding/json would.
func listText(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	n := 1
	for _, v := range l {
		if !plainJSON(v) {
			b, err := json.Marshal(l)
			if err != nil {
				panic(err) // []string always marshals
			}
			return string(b)
		}
		n += len(v) + 3
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, v := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, v...)
		b = append(b, '"')
	}
	b = append(b, ']')
	return string(b)
}

// plainJSON reports whether s can be put between quotes as JSON as it is
// (and as encoding/json would write it, which also escapes <, > and &).
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// mapText encodes a string map as JSON text; empty is "{}".
func mapText(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	return string(jsontext.AppendObject(make([]byte, 0, 256), m))
}

// timeCol scans a NULL-able unix-microsecond column into a UTC time.
type timeCol struct{ p *time.Time }

func (c timeCol) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*c.p = time.Time{}
	case int64:
		*c.p = time.UnixMicro(v).UTC()
	default:
		return fmt.Errorf("time column holds %T", v)
	}
	return nil
}

// durCol scans nanoseconds into a duration.
type durCol struct{ p *time.Duration }

func (c durCol) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*c.p = 0
	case int64:
		*c.p = time.Duration(v)
	default:
		return fmt.Errorf("duration column holds %T", v)
	}
	return nil
}

// listCol scans JSON text into a string list; an empty list scans as nil.
type listCol struct{ p *[]string }

func (c listCol) Scan(v any) error {
	b, err := textOf(v)
	if err != nil || b == "" || b == "[]" || b == "null" {
		*c.p = nil
		return err
	}
	if l, ok := fastStringList(b); ok {
		*c.p = l
		return nil
	}
	var l []string
	if err := json.Unmarshal([]byte(b), &l); err != nil {
		return fmt.Errorf("string list column: %w", err)
	}
	*c.p = l
	return nil
}

// mapCol scans JSON text into a string map; an empty map scans as nil.
type mapCol struct{ p *map[string]string }

func (c mapCol) Scan(v any) error {
	b, err := textOf(v)
	if err != nil || b == "" || b == "{}" || b == "null" {
		*c.p = nil
		return err
	}
	if m, ok := fastStringMap(b); ok {
		*c.p = m
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(b), &m); err != nil {
		return fmt.Errorf("string map column: %w", err)
	}
	*c.p = m
	return nil
}

// jsonText reads the common shape of the stored JSON columns, strings of
// printable ASCII with only the short escapes, several times faster than
// encoding/json (the audit chain reads every event's scopes and details
// back). Anything else (non-ASCII, \u escapes, other JSON) is not ok, and
// the caller falls back to encoding/json; where it is ok the result is
// what encoding/json gives (FuzzFastStringMap, FuzzFastStringList).
type jsonText struct {
	s string
	i int
}

func (t *jsonText) ws() {
	for t.i < len(t.s) && (t.s[t.i] == ' ' || t.s[t.i] == '\t' || t.s[t.i] == '\n' || t.s[t.i] == '\r') {
		t.i++
	}
}

// next skips white space and reports whether the next byte is c, taking it
// if so.
func (t *jsonText) next(c byte) bool {
	t.ws()
	if t.i < len(t.s) && t.s[t.i] == c {
		t.i++
		return true
	}
	return false
}

// end skips white space and reports whether nothing is left.
func (t *jsonText) end() bool {
	t.ws()
	return t.i == len(t.s)
}

// str reads a string after white space: without escapes a substring of
// the text, with them a copy.
func (t *jsonText) str() (string, bool) {
	s := t.s
	t.ws()
	if t.i >= len(s) || s[t.i] != '"' {
		return "", false
	}
	t.i++
	start, plain := t.i, true
	var buf []byte
	for t.i < len(s) {
		ch := s[t.i]
		switch {
		case ch == '"':
			t.i++
			if plain {
				return s[start : t.i-1], true
			}
			return string(buf), true
		case ch == '\\':
			if plain {
				buf = append(buf, s[start:t.i]...)
				plain = false
			}
			if t.i+1 >= len(s) {
				return "", false
			}
			var r byte
			switch s[t.i+1] {
			case '"', '\\', '/':
				r = s[t.i+1]
			case 'n':
				r = '\n'
			case 't':
				r = '\t'
			case 'r':
				r = '\r'
			case 'b':
				r = '\b'
			case 'f':
				r = '\f'
			default:
				return "", false // \u and anything unknown: encoding/json decides
			}
			buf = append(buf, r)
			t.i += 2
		case ch < 0x20 || ch >= 0x7f:
			return "", false
		default:
			if !plain {
				buf = append(buf, ch)
			}
			t.i++
		}
	}
	return "", false
}

// fastStringMap decodes a stored string map, a JSON object (see jsonText).
func fastStringMap(s string) (map[string]string, bool) {
	t := &jsonText{s: s}
	if !t.next('{') {
		return nil, false
	}
	// Every member has a colon outside its strings; one inside a string
	// only makes the map's size hint larger.
	m := make(map[string]string, strings.Count(s, ":"))
	if t.next('}') {
		return m, t.end()
	}
	for {
		k, ok := t.str()
		if !ok || !t.next(':') {
			return nil, false
		}
		v, ok := t.str()
		if !ok {
			return nil, false
		}
		m[k] = v
		if t.next('}') {
			return m, t.end()
		}
		if !t.next(',') {
			return nil, false
		}
	}
}

// fastStringList decodes a stored string list, a JSON array (see
// jsonText).
func fastStringList(s string) ([]string, bool) {
	t := &jsonText{s: s}
	if !t.next('[') {
		return nil, false
	}
	l := make([]string, 0, strings.Count(s, ",")+1)
	if t.next(']') {
		return l, t.end()
	}
	for {
		v, ok := t.str()
		if !ok {
			return nil, false
		}
		l = append(l, v)
		if t.next(']') {
			return l, t.end()
		}
		if !t.next(',') {
			return nil, false
		}
	}
}

func textOf(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	default:
		return "", fmt.Errorf("text column holds %T", v)
	}
}

var (
	_ sql.Scanner = timeCol{}
	_ sql.Scanner = durCol{}
	_ sql.Scanner = listCol{}
	_ sql.Scanner = mapCol{}
)
