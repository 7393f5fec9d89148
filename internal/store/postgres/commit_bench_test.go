package postgres

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentid/agentid/internal/store/pgtest"
)

// BenchmarkCommitRow is a physical limit of the PostgreSQL store: one
// 64-byte row inserted in its own implicit transaction (one round trip,
// one commit) through pgx, as the store talks to the server. one-caller
// is the latency floor of a write; pool-16 has 16 connections insert
// concurrently, as one replica's pool does, which lets the server's WAL
// flushes serve several commits. The cluster's own settings (fsync,
// synchronous_commit) decide whether a commit waits for the disk; the
// report should say which they were. Run with:
//
//	AGENTID_TEST_POSTGRES=… go test -run '^$' -bench CommitRow ./internal/store/postgres
func BenchmarkCommitRow(b *testing.B) {
	b.Run("one-caller", func(b *testing.B) { benchCommitRow(b, 1) })
	b.Run("pool-16", func(b *testing.B) { benchCommitRow(b, 16) })
}

func benchCommitRow(b *testing.B, callers int) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pgtest.FreshSchema(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = int32(callers)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_rows (id bigserial PRIMARY KEY, v bytea NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	row := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N / callers
	for c := range callers {
		n := per
		if c == 0 {
			n += b.N % callers
		}
		wg.Go(func() {
			for range n {
				if _, err := pool.Exec(ctx, `INSERT INTO bench_rows (v) VALUES ($1)`, row); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
