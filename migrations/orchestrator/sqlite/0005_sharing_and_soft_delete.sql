-- Account administration (`ide-orchestrator user disable|enable|set-password`) and soft
-- deletion of workflows (DELETE /api/workflows/{id}).
--
-- users.disabled_at: set while the account is disabled; its tokens answer 401 and it cannot
-- sign in. users.tokens_not_before: tokens issued (iat) before this second are no longer
-- accepted; set-password moves it to now, so a new password ends every older session.
ALTER TABLE users ADD COLUMN disabled_at TEXT;
ALTER TABLE users ADD COLUMN tokens_not_before TEXT;

-- workflows.deleted_at/deleted_by: a deleted workflow keeps its rows (versions, proposals,
-- audit log) but is invisible to every route and excluded from lists.
ALTER TABLE workflows ADD COLUMN deleted_at TEXT;
ALTER TABLE workflows ADD COLUMN deleted_by TEXT REFERENCES users(id);


-- POST /api/proposals/{id}/retry: a proposal is re-run at most once (the primary key makes
-- racing retries of one proposal start one refinement); a failed retry is retried in turn.
CREATE TABLE proposal_retries (
  proposal_id TEXT PRIMARY KEY REFERENCES proposals(id) ON DELETE CASCADE,
  retry_id    TEXT NOT NULL UNIQUE REFERENCES proposals(id) ON DELETE CASCADE,
  created_at  TEXT NOT NULL
);
