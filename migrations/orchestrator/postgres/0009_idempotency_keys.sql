-- Idempotency-Key (draft-ietf-httpapi-idempotency-key-header) of the request that started a
-- refinement or a run. The key is kept with the proposal or run it created, for as long as that
-- record exists: the same user sending the same key again gets the recorded proposal or run
-- back instead of a second one (docs/orchestrator-api.md "Idempotency-Key"). The unique index
-- makes two concurrent requests with one key record one proposal (or run) between them.
ALTER TABLE proposals ADD COLUMN idempotency_key TEXT;
ALTER TABLE runs ADD COLUMN idempotency_key TEXT;
-- The target a keyed run start named ('deployed', 'draft' or the version number), so that a
-- repeated request is compared with what was asked, not with what it resolved to.
ALTER TABLE runs ADD COLUMN idempotency_target TEXT;
CREATE UNIQUE INDEX proposals_idempotency_key ON proposals (created_by_user_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX runs_idempotency_key ON runs (created_by_user_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
