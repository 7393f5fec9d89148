-- 0014: the audit trail's streaming sinks (issue 13; docs/design.md §6,
-- "Streaming sinks"). PostgreSQL's 0014 is its twin; TestSchemaParity
-- keeps them equal.
--
-- One row per configured sink: its cursor (the last event id delivered or
-- dead-lettered), the lease of the dispatcher running it, and its health.
CREATE TABLE audit_sinks (
    name          TEXT    NOT NULL PRIMARY KEY,
    cursor_id     INTEGER NOT NULL,
    holder        TEXT    NOT NULL DEFAULT '',
    lease_until   INTEGER,
    delivered_at  INTEGER,
    failures      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT    NOT NULL DEFAULT '',
    last_error_at INTEGER,
    dead_letters  INTEGER NOT NULL DEFAULT 0
);

-- The batches a sink gave up on; the events themselves stay in the trail.
CREATE TABLE audit_dead_letters (
    id       INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    sink     TEXT    NOT NULL,
    first_id INTEGER NOT NULL,
    last_id  INTEGER NOT NULL,
    events   INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    error    TEXT    NOT NULL,
    at       INTEGER NOT NULL
);
CREATE INDEX audit_dead_letters_sink ON audit_dead_letters (sink, id);
