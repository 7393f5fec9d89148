package sqlite

import (
	"context"
	"database/sql"
	"log/slog"
	"time"
)

// The WAL grows with every commit until a checkpoint copies its pages back
// into the database file. SQLite's automatic checkpoint runs inside the
// committing writer (and fsyncs there), stalling every write behind it; so
// the writer's threshold is raised to a safety net and this goroutine
// checkpoints on its own connection, in parallel with the writer.

const (
	checkpointEvery = 200 * time.Millisecond
	// walSafetyPages is the writer's own autocheckpoint threshold (pages of
	// 4 KiB). Under steady load a passive checkpoint never catches up with
	// the writer, so the WAL is only rewound after the writer's own, complete
	// checkpoint; by then the background has copied most frames, and the
	// writer's share is short.
	walSafetyPages = 4096
	// walSizeLimit truncates the WAL file after it is rewound, so a burst
	// does not leave a large file behind.
	walSizeLimit = 64 << 20
)

type checkpointer struct {
	db   *sql.DB
	log  *slog.Logger
	quit chan struct{}
	done chan struct{}
}

func startCheckpointer(db *sql.DB, log *slog.Logger) *checkpointer {
	c := &checkpointer{db: db, log: log, quit: make(chan struct{}), done: make(chan struct{})}
	go c.loop()
	return c
}

func (c *checkpointer) loop() {
	defer close(c.done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
		}
		// PASSIVE: copy what no reader still needs, never wait for a lock.
		var busy, logPages, done int
		err := c.db.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logPages, &done)
		if err != nil {
			c.log.Warn("sqlite: wal checkpoint", "err", err)
		}
	}
}

func (c *checkpointer) stop() error {
	close(c.quit)
	<-c.done
	return c.db.Close()
}
