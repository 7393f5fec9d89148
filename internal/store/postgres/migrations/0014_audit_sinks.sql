-- 0014: the audit trail's streaming sinks (issue 13; docs/design.md §6,
-- "Streaming sinks"). SQLite's 0014 is its twin; TestSchemaParity keeps
-- them equal.
--
-- One row per configured sink: its cursor (the last event id delivered or
-- dead-lettered), the lease of the dispatcher running it, and its health.
CREATE TABLE audit_sinks (
    name          text        NOT NULL PRIMARY KEY,
    cursor_id     bigint      NOT NULL,
    holder        text        NOT NULL DEFAULT '',
    lease_until   timestamptz,
    delivered_at  timestamptz,
    failures      integer     NOT NULL DEFAULT 0,
    last_error    text        NOT NULL DEFAULT '',
    last_error_at timestamptz,
    dead_letters  bigint      NOT NULL DEFAULT 0
);

-- The batches a sink gave up on; the events themselves stay in the trail.
CREATE TABLE audit_dead_letters (
    id       bigserial   NOT NULL PRIMARY KEY,
    sink     text        NOT NULL,
    first_id bigint      NOT NULL,
    last_id  bigint      NOT NULL,
    events   integer     NOT NULL,
    attempts integer     NOT NULL,
    error    text        NOT NULL,
    at       timestamptz NOT NULL
);
CREATE INDEX audit_dead_letters_sink ON audit_dead_letters (sink, id);
