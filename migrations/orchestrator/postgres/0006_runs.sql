-- Deployments and workflow runs (README "Runs"). A workflow's deployment names the version
-- that runs when a run does not ask for one; a run executes a version's (or the draft's)
-- /definition.json on the Spec Engine as engine thread `thread_id`. base_files: the files the
-- run started with; files: those it added or changed (JSON text in the engine file shape);
-- timestamps are RFC 3339 UTC text. failure_kind: why a failed run failed, with the names of
-- proposals.failure_kind (0004): engine_failed, engine_gone, engine_unreachable (the invoke got
-- no answer), engine_rejected, expired (orphan TTL), invalid_result; NULL unless failed.
-- lease_owner/lease_expires_at: the orchestrator replica tracking the run (as for proposals).
-- engine_cleanup_pending: the engine thread is to be deleted (cancelled, expired, failed to
-- start, or finished longer than the orphan TTL ago); engine_thread_deleted_at: when the
-- engine confirmed the deletion (each thread is deleted once).

CREATE TABLE deployments (
  workflow_id TEXT PRIMARY KEY REFERENCES workflows(id) ON DELETE CASCADE,
  version_id  TEXT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
  deployed_by TEXT NOT NULL REFERENCES users(id),
  deployed_at TEXT NOT NULL
);

CREATE TABLE runs (
  id                     TEXT PRIMARY KEY,
  workflow_id            TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
  version_id             TEXT REFERENCES versions(id) ON DELETE SET NULL,
  version_number         INTEGER,
  draft_revision         INTEGER,
  thread_id              TEXT NOT NULL UNIQUE,
  status                 TEXT NOT NULL CHECK (status IN ('processing', 'completed', 'failed', 'cancelled')),
  input                  TEXT NOT NULL,
  output                 TEXT,
  base_files             TEXT NOT NULL,
  files                  TEXT,
  error                  TEXT,
  failure_kind           TEXT,
  created_by_user_id     TEXT NOT NULL REFERENCES users(id),
  created_at             TEXT NOT NULL,
  completed_at           TEXT,
  lease_owner            TEXT,
  lease_expires_at       TEXT,
  engine_cleanup_pending INTEGER NOT NULL DEFAULT 0,
  engine_thread_deleted_at TEXT
);
CREATE INDEX runs_workflow_created ON runs (workflow_id, created_at, id);
CREATE INDEX runs_status_created ON runs (status, created_at);
CREATE INDEX runs_user_status ON runs (created_by_user_id, status);
-- The sweeper's look-up of finished runs whose engine thread is still kept.
CREATE INDEX runs_thread_kept ON runs (completed_at)
  WHERE status <> 'processing' AND engine_cleanup_pending = 0 AND engine_thread_deleted_at IS NULL;
