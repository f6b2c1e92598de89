-- Spec Engine schema (docs/engine-api.md#durability). JSON is stored as TEXT,
-- timestamps as RFC 3339 UTC TEXT, so SQLite and PostgreSQL share one code path.
CREATE TABLE threads (
  thread_id        TEXT PRIMARY KEY,
  job_id           TEXT NOT NULL,
  trace_id         TEXT NOT NULL DEFAULT '',
  traceparent      TEXT NOT NULL DEFAULT '',
  status           TEXT NOT NULL CHECK (status IN ('queued','running','completed','failed','cancelled')),
  agent_definition TEXT NOT NULL,
  input_payload    TEXT NOT NULL,
  result           TEXT,
  generated_files  TEXT,
  error            TEXT,
  last_seq         BIGINT NOT NULL DEFAULT 0,
  recoveries       INTEGER NOT NULL DEFAULT 0,
  created_at       TEXT NOT NULL,
  updated_at       TEXT NOT NULL
);
CREATE INDEX threads_status_idx ON threads (status);
CREATE TABLE events (
  thread_id  TEXT NOT NULL,
  seq        BIGINT NOT NULL,
  event_type TEXT NOT NULL,
  data       TEXT NOT NULL,
  ts         TEXT NOT NULL,
  PRIMARY KEY (thread_id, seq)
);
-- Only the latest checkpoint per thread is kept (a run resumes from its last step).
CREATE TABLE checkpoints (
  thread_id  TEXT PRIMARY KEY,
  seq        BIGINT NOT NULL,
  state      TEXT NOT NULL,
  created_at TEXT NOT NULL
);
