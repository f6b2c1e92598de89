-- Why a failed proposal failed, so the orchestrator can tell "the engine said so" from "we never
-- heard back": engine_failed (the run failed or was cancelled on the engine), engine_gone (the
-- engine no longer knows the thread), engine_unreachable (the engine could not be reached, so the
-- run may still have completed: the sweeper re-checks these and brings completed ones back),
-- engine_rejected (the engine refused the job), expired (orphan TTL), invalid_result (the engine's
-- files could not be stored). NULL for proposals that never failed.
ALTER TABLE proposals ADD COLUMN failure_kind TEXT;

-- Failures recorded before this column existed, classified by the sentences the orchestrator wrote.
UPDATE proposals SET failure_kind = 'engine_unreachable'
WHERE status = 'failed' AND (error LIKE 'The refinement engine stopped responding%'
                             OR error LIKE 'The refinement engine was unavailable%');
UPDATE proposals SET failure_kind = 'expired'
WHERE status = 'failed' AND failure_kind IS NULL AND error LIKE 'the refinement produced no result within%';
UPDATE proposals SET failure_kind = 'engine_failed' WHERE status = 'failed' AND failure_kind IS NULL;

CREATE INDEX proposals_unreachable ON proposals (failure_kind) WHERE failure_kind = 'engine_unreachable';
