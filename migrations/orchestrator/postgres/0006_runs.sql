-- Deployments and workflow runs (README "Runs"). A workflow's deployment names the version
-- that runs when a run does not ask for one; a run executes a version's (or the draft's)
-- /definition.json on the Spec Engine as engine thread `thread_id`. base_files: the files the
-- run started with; files: those it added or changed (JSON text in the engine file shape);
-- timestamps are RFC 3339 UTC text.

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
  created_by_user_id     TEXT NOT NULL REFERENCES users(id),
  created_at             TEXT NOT NULL,
  completed_at           TEXT,
  lease_owner            TEXT,
  lease_expires_at       TEXT,
  engine_cleanup_pending INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_workflow_created ON runs (workflow_id, created_at, id);
CREATE INDEX runs_status_created ON runs (status, created_at);
CREATE INDEX runs_user_status ON runs (created_by_user_id, status);
