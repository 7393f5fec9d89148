package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/agentid/agentid/internal/store"
)

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

func TestLoad(t *testing.T) {
	tests := []struct {
		name     string
		fsys     fstest.MapFS
		versions []int
		wantErr  bool
	}{
		{"ordered", fstest.MapFS{
			"0002_b.sql":     file("B"),
			"0001_a.sql":     file("A"),
			"README":         file("not sql"),
			"0003_c.sql":     file("C"),
			"notes/0009.sql": file("in a directory"),
		}, []int{1, 2, 3}, false},
		{"gap", fstest.MapFS{"0001_a.sql": file("A"), "0003_c.sql": file("C")}, nil, true},
		{"duplicate version", fstest.MapFS{"0001_a.sql": file("A"), "001_b.sql": file("B")}, nil, true},
		{"starts at zero", fstest.MapFS{"0000_a.sql": file("A")}, nil, true},
		{"starts at two", fstest.MapFS{"0002_a.sql": file("A")}, nil, true},
		{"negative", fstest.MapFS{"-001_a.sql": file("A")}, nil, true},
		{"no number", fstest.MapFS{"init.sql": file("A")}, nil, true},
		{"not a number", fstest.MapFS{"x1_init.sql": file("A")}, nil, true},
		{"no name", fstest.MapFS{"0001_.sql": file("A")}, nil, true},
		{"empty", fstest.MapFS{}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := Load(tc.fsys)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Load error = %v, want error %v", err, tc.wantErr)
			}
			var got []int
			for _, m := range ms {
				got = append(got, m.Version)
				if m.SQL == "" || m.Name == "" {
					t.Errorf("migration %d has no name or script", m.Version)
				}
			}
			if !slices.Equal(got, tc.versions) {
				t.Fatalf("versions = %v, want %v", got, tc.versions)
			}
		})
	}
}

// fakeDB is a database whose schema is the list of scripts applied to it,
// with transactions and a migration lock.
type fakeDB struct {
	lock    sync.Mutex // the migration lock
	mu      sync.Mutex // guards the fields below
	table   bool       // the version table exists
	applied []Migration
	fail    string // a script that fails
}

func (db *fakeDB) Current(context.Context) (int, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if !db.table {
		return 0, nil
	}
	return len(db.applied), nil
}

func (db *fakeDB) Transact(ctx context.Context, fn func(Tx) error) error {
	db.lock.Lock()
	defer db.lock.Unlock()
	db.mu.Lock()
	tx := &fakeTx{db: db, table: db.table, applied: slices.Clone(db.applied)}
	db.mu.Unlock()
	if err := fn(tx); err != nil {
		return err
	}
	db.mu.Lock()
	db.table, db.applied = tx.table, tx.applied
	db.mu.Unlock()
	return nil
}

type fakeTx struct {
	db      *fakeDB
	table   bool
	applied []Migration
}

func (tx *fakeTx) Applied(context.Context) (int, error) {
	tx.table = true
	if n := len(tx.applied); n > 0 {
		return tx.applied[n-1].Version, nil
	}
	return 0, nil
}

func (tx *fakeTx) Apply(_ context.Context, m Migration) error {
	if m.SQL == tx.db.fail {
		return errors.New("syntax error")
	}
	tx.applied = append(tx.applied, m)
	return nil
}

func migrations(n int) []Migration {
	var ms []Migration
	for v := 1; v <= n; v++ {
		ms = append(ms, Migration{Version: v, Name: fmt.Sprintf("%04d_m.sql", v), SQL: fmt.Sprintf("script %d", v)})
	}
	return ms
}

func TestRun(t *testing.T) {
	ctx := t.Context()
	db := &fakeDB{}
	cur, known, err := Version(ctx, db, migrations(2))
	if err != nil || cur != 0 || known != 2 {
		t.Fatalf("Version of a new database = %d, %d, %v; want 0, 2, nil", cur, known, err)
	}
	steps := []struct {
		name     string
		ms       []Migration
		fail     string
		from, to int
		wantErr  error
	}{
		{name: "fresh", ms: migrations(2), from: 0, to: 2},
		{name: "again", ms: migrations(2), from: 2, to: 2},
		{name: "two more, the last failing", ms: migrations(4), fail: "script 4", from: 2, to: 2, wantErr: errors.New("any")},
		{name: "two more", ms: migrations(4), from: 2, to: 4},
		{name: "older binary", ms: migrations(3), from: 4, to: 4, wantErr: store.ErrSchemaTooNew},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			db.fail = st.fail
			from, to, err := Run(ctx, db, st.ms, nil)
			switch {
			case st.wantErr == nil && err != nil:
				t.Fatalf("Run: %v", err)
			case st.wantErr != nil && err == nil:
				t.Fatal("Run succeeded")
			case errors.Is(st.wantErr, store.ErrSchemaTooNew) && !errors.Is(err, store.ErrSchemaTooNew):
				t.Fatalf("Run: %v, want ErrSchemaTooNew", err)
			}
			if from != st.from || to != st.to {
				t.Fatalf("Run = %d→%d, want %d→%d", from, to, st.from, st.to)
			}
			cur, _, err := Version(ctx, db, st.ms)
			if err != nil || cur != st.to {
				t.Fatalf("Version after Run = %d, %v; want %d", cur, err, st.to)
			}
		})
	}
	var names []string
	for _, m := range db.applied {
		names = append(names, m.SQL)
	}
	if want := []string{"script 1", "script 2", "script 3", "script 4"}; !slices.Equal(names, want) {
		t.Fatalf("applied %v, want each script once, in order: %v", names, want)
	}
}

// TestRunConcurrent: migrators racing on one database apply each script
// once; exactly one of them starts from 0.
func TestRunConcurrent(t *testing.T) {
	db := &fakeDB{}
	ms := migrations(3)
	const n = 8
	froms := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { froms[i], _, errs[i] = Run(t.Context(), db, ms, nil) })
	}
	wg.Wait()
	fresh := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("migrator %d: %v", i, errs[i])
		}
		if froms[i] == 0 {
			fresh++
		}
	}
	if fresh != 1 || len(db.applied) != len(ms) {
		t.Fatalf("%d migrators started from 0 and %d scripts were applied; want 1 and %d", fresh, len(db.applied), len(ms))
	}
}
