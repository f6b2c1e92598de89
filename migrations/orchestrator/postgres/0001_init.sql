-- IDE Orchestrator schema (PostgreSQL). Mirrors sqlite/0001_init.sql: same tables,
-- columns and indexes; timestamps are RFC 3339 UTC text with microseconds (so text
-- order is time order), ids are UUID text; JSON documents are JSONB here, text in SQLite.

CREATE TABLE users (
  id            TEXT PRIMARY KEY,
  email         TEXT NOT NULL UNIQUE,
  name          TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  created_at    TEXT NOT NULL
);

CREATE TABLE workflows (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  owner_id    TEXT NOT NULL REFERENCES users(id),
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL
);

CREATE TABLE workflow_members (
  workflow_id TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
  user_id     TEXT NOT NULL REFERENCES users(id),
  role        TEXT NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
  added_at    TEXT NOT NULL,
  PRIMARY KEY (workflow_id, user_id)
);
CREATE INDEX workflow_members_user ON workflow_members (user_id, workflow_id);
CREATE INDEX workflows_created ON workflows (created_at, id);

CREATE TABLE versions (
  id          TEXT PRIMARY KEY,
  workflow_id TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
  number      BIGINT NOT NULL,
  created_by  TEXT NOT NULL REFERENCES users(id),
  created_at  TEXT NOT NULL,
  UNIQUE (workflow_id, number)
);

CREATE TABLE version_files (
  version_id  TEXT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
  path        TEXT NOT NULL,
  content     TEXT NOT NULL,
  created_at  TEXT NOT NULL,
  modified_at TEXT NOT NULL,
  PRIMARY KEY (version_id, path)
);

CREATE TABLE drafts (
  id          TEXT PRIMARY KEY,
  workflow_id TEXT NOT NULL UNIQUE REFERENCES workflows(id) ON DELETE CASCADE,
  revision    BIGINT NOT NULL DEFAULT 1,
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL
);

CREATE TABLE draft_files (
  draft_id    TEXT NOT NULL REFERENCES drafts(id) ON DELETE CASCADE,
  path        TEXT NOT NULL,
  content     TEXT NOT NULL,
  created_at  TEXT NOT NULL,
  modified_at TEXT NOT NULL,
  PRIMARY KEY (draft_id, path)
);

CREATE TABLE proposals (
  id                     TEXT PRIMARY KEY,
  workflow_id            TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
  draft_id               TEXT REFERENCES drafts(id) ON DELETE SET NULL,
  thread_id              TEXT NOT NULL UNIQUE,
  status                 TEXT NOT NULL CHECK (status IN ('processing', 'completed', 'failed', 'cancelled', 'approved', 'rejected')),
  user_prompt            TEXT NOT NULL,
  context_file_path      TEXT,
  context_selection      TEXT,
  generated_files        JSONB,
  base_files             JSONB NOT NULL,
  error                  TEXT,
  created_at             TEXT NOT NULL,
  completed_at           TEXT,
  resolved_at            TEXT,
  created_by_user_id     TEXT NOT NULL REFERENCES users(id),
  resolved_by_user_id    TEXT REFERENCES users(id),
  lease_owner            TEXT,
  lease_expires_at       TEXT,
  engine_cleanup_pending INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX proposals_workflow_created ON proposals (workflow_id, created_at, id);
CREATE INDEX proposals_status_created ON proposals (status, created_at);
CREATE INDEX proposals_cleanup ON proposals (engine_cleanup_pending) WHERE engine_cleanup_pending = 1;

CREATE TABLE proposal_access (
  proposal_id TEXT NOT NULL REFERENCES proposals(id) ON DELETE CASCADE,
  user_id     TEXT NOT NULL REFERENCES users(id),
  access_type TEXT NOT NULL CHECK (access_type IN ('owner', 'reviewer', 'viewer')),
  granted_at  TEXT NOT NULL,
  PRIMARY KEY (proposal_id, user_id)
);
CREATE INDEX proposal_access_user ON proposal_access (user_id, proposal_id);

CREATE TABLE audit_log (
  id           TEXT PRIMARY KEY,
  at           TEXT NOT NULL,
  user_id      TEXT,
  workflow_id  TEXT,
  action       TEXT NOT NULL,
  subject_type TEXT NOT NULL,
  subject_id   TEXT NOT NULL,
  details      JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_workflow_at ON audit_log (workflow_id, at, id);
CREATE INDEX audit_log_subject ON audit_log (subject_type, subject_id);
