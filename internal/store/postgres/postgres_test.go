package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/pgtest"
)

// openStore opens a Store on dsn, closed when the test ends.
func openStore(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, Options{MaxConns: 8})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newStore returns a migrated store in a fresh schema.
func newStore(t testing.TB) *Store {
	t.Helper()
	s := openStore(t, pgtest.FreshSchema(t))
	if _, _, err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

func knownVersion(t testing.TB) int {
	t.Helper()
	ms, err := loadMigrations()
	if err != nil {
		t.Fatalf("embedded migrations: %v", err)
	}
	return len(ms)
}

func TestMapErr(t *testing.T) {
	tests := []struct {
		name string
		in   error
		want error
	}{
		{"nil", nil, nil},
		{"no rows", pgx.ErrNoRows, store.ErrNotFound},
		{"wrapped no rows", fmt.Errorf("scan: %w", pgx.ErrNoRows), store.ErrNotFound},
		{"unique violation", &pgconn.PgError{Code: "23505", ConstraintName: "clients_pkey", Detail: "Key (id)=(secret) already exists."}, store.ErrConflict},
		{"sentinel passes through", fmt.Errorf("x: %w", store.ErrAlreadyUsed), store.ErrAlreadyUsed},
		{"other pg error", &pgconn.PgError{Code: "23503"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mapErr("op", tc.in)
			if tc.in == nil {
				if got != nil {
					t.Fatalf("mapErr(nil) = %v", got)
				}
				return
			}
			if got == nil {
				t.Fatal("mapErr dropped the error")
			}
			if tc.want != nil && !errors.Is(got, tc.want) {
				t.Fatalf("mapErr = %v, want %v", got, tc.want)
			}
			for _, s := range []error{store.ErrNotFound, store.ErrConflict} {
				if tc.want == nil && errors.Is(got, s) {
					t.Fatalf("mapErr = %v, must not be %v", got, s)
				}
			}
			if strings.Contains(got.Error(), "secret") {
				t.Fatalf("mapErr leaked the violation detail: %v", got)
			}
		})
	}
}

// TestOpenErrorsHidePassword checks that failing to open never puts the
// DSN's password into the error.
func TestOpenErrorsHidePassword(t *testing.T) {
	const pw = "hunter2-very-secret"
	tests := []struct {
		name string
		dsn  string
	}{
		{"unparsable", "postgres://agentid:" + pw + "@127.0.0.1:notaport/db"},
		{"bad option", "postgres://agentid:" + pw + "@127.0.0.1:1/db?sslmode=bogus"},
		{"unreachable", "postgres://agentid:" + pw + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := Open(ctx, tc.dsn, Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if strings.Contains(err.Error(), pw) {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

func TestSchemaVersionFresh(t *testing.T) {
	s := openStore(t, pgtest.FreshSchema(t))
	known := knownVersion(t)
	cur, k, err := s.SchemaVersion(t.Context())
	if err != nil || cur != 0 || k != known {
		t.Fatalf("SchemaVersion before Migrate = %d, %d, %v; want 0, %d, nil", cur, k, err, known)
	}
	from, to, err := s.Migrate(t.Context())
	if err != nil || from != 0 || to != known {
		t.Fatalf("Migrate = %d→%d, %v; want 0→%d", from, to, err, known)
	}
	cur, _, err = s.SchemaVersion(t.Context())
	if err != nil || cur != known {
		t.Fatalf("SchemaVersion after Migrate = %d, %v; want %d", cur, err, known)
	}
}

// TestMigrateConcurrent starts several replicas migrating one empty schema
// at once: the advisory lock lets exactly one apply the migrations and the
// others find them applied.
func TestMigrateConcurrent(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	known := knownVersion(t)
	const replicas = 6
	stores := make([]*Store, replicas)
	for i := range stores {
		stores[i] = openStore(t, dsn)
	}
	froms := make([]int, replicas)
	errs := make([]error, replicas)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			<-start
			var to int
			froms[i], to, errs[i] = s.Migrate(t.Context())
			if errs[i] == nil && to != known {
				errs[i] = fmt.Errorf("to = %d, want %d", to, known)
			}
		})
	}
	close(start)
	wg.Wait()
	fresh := 0
	for i := range stores {
		if errs[i] != nil {
			t.Fatalf("replica %d: Migrate: %v", i, errs[i])
		}
		switch froms[i] {
		case 0:
			fresh++
		case known:
		default:
			t.Fatalf("replica %d migrated from %d", i, froms[i])
		}
	}
	if fresh != 1 {
		t.Fatalf("%d replicas migrated from 0, want exactly 1", fresh)
	}
	var rows int
	if err := stores[0].pool.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != known {
		t.Fatalf("schema_migrations has %d rows, want %d", rows, known)
	}
}

func TestSchemaTooNew(t *testing.T) {
	s := newStore(t)
	known := knownVersion(t)
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')`, known+1); err != nil {
		t.Fatal(err)
	}
	from, _, err := s.Migrate(t.Context())
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("Migrate on a newer schema: %v, want ErrSchemaTooNew", err)
	}
	if from != known+1 {
		t.Fatalf("Migrate reported from = %d, want %d", from, known+1)
	}
	cur, k, err := s.SchemaVersion(t.Context())
	if err != nil || cur != known+1 || k != known {
		t.Fatalf("SchemaVersion = %d, %d, %v; want %d, %d", cur, k, err, known+1, known)
	}
}

// TestReplicasRotateOnce races RotateRefresh and ConsumeAuthCode from
// separate pools (as separate replicas would) on one database.
func TestReplicasRotateOnce(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	a := openStore(t, dsn)
	if _, _, err := a.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := openStore(t, dsn)
	replicas := []*Store{a, b}
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

	for round := range 5 {
		t.Run(fmt.Sprintf("round %d", round), func(t *testing.T) {
			grant := "g" + rand.Text()[:8]
			rt := &store.RefreshToken{Hash: []byte("rt-" + grant), TenantID: store.DefaultTenant, GrantID: grant,
				ClientID: "c", UserID: "u", CreatedAt: now, AuthTime: now, ExpiresAt: now.Add(time.Hour)}
			code := &store.AuthCode{Hash: []byte("code-" + grant), TenantID: store.DefaultTenant, GrantID: grant,
				ClientID: "c", UserID: "u", AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
			if err := a.IssueTokens(t.Context(), &store.Issuance{RefreshToken: rt}); err != nil {
				t.Fatal(err)
			}
			if err := a.CreateAuthCode(t.Context(), code, nil); err != nil {
				t.Fatal(err)
			}
			const racers = 8
			rotErrs := make([]error, racers)
			codeErrs := make([]error, racers)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range racers {
				s := replicas[i%2]
				wg.Go(func() {
					<-start
					next := &store.RefreshToken{Hash: fmt.Appendf(nil, "rt-%s-%d", grant, i), TenantID: store.DefaultTenant,
						GrantID: grant, ClientID: "c", UserID: "u", CreatedAt: now, AuthTime: now, ExpiresAt: now.Add(time.Hour)}
					rotErrs[i] = s.RotateRefresh(t.Context(), rt.Hash, now.Add(time.Second), &store.Issuance{RefreshToken: next}, nil)
					_, codeErrs[i] = s.ConsumeAuthCode(t.Context(), code.Hash, now.Add(time.Second), nil)
				})
			}
			close(start)
			wg.Wait()
			for name, errs := range map[string][]error{"RotateRefresh": rotErrs, "ConsumeAuthCode": codeErrs} {
				wins := 0
				for i, err := range errs {
					switch {
					case err == nil:
						wins++
					case errors.Is(err, store.ErrAlreadyUsed):
					default:
						t.Fatalf("%s racer %d: %v", name, i, err)
					}
				}
				if wins != 1 {
					t.Fatalf("%s: %d winners across replicas, want exactly 1", name, wins)
				}
			}
		})
	}
}
