package sqlite

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
)

// BenchmarkCommitRow is a physical limit of the SQLite store: one 64-byte
// row inserted and committed through the store's own write connection and
// settings (WAL, synchronous=NORMAL, BEGIN IMMEDIATE, its statement
// cache), so what any durable hub write costs at least.
//
// one-caller commits every row in its own transaction, one caller at a
// time: the latency floor of a write. group-commit-16 has 16 callers
// share the writer as the hub's requests do, so that waiting rows share
// one commit: the throughput ceiling of one-row writes. Both report the
// process's CPU time per row; with synchronous=NORMAL a WAL commit is not
// synced to disk (a checkpoint is), so neither waits for the disk.
func BenchmarkCommitRow(b *testing.B) {
	b.Run("one-caller", func(b *testing.B) { benchCommitRow(b, 1, 1) })
	b.Run("group-commit-16", func(b *testing.B) { benchCommitRow(b, defaultMaxBatch, 16) })
}

func benchCommitRow(b *testing.B, maxBatch, callers int) {
	s := openAt(b, filepath.Join(b.TempDir(), "commit.db"), maxBatch)
	ctx := context.Background()
	if err := s.w.do(ctx, func(tx *wtx) error {
		_, err := tx.exec(`CREATE TABLE bench_rows (id INTEGER PRIMARY KEY, v BLOB NOT NULL)`)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	row := make([]byte, 64)
	insert := func(tx *wtx) error {
		_, err := tx.exec(`INSERT INTO bench_rows (v) VALUES (?)`, row)
		return err
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
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
				if err := s.w.do(ctx, insert); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}
