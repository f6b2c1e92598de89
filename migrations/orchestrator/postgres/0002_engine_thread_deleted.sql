-- When the engine confirmed the deletion of a proposal's thread. Lets the sweeper delete
-- the threads of proposals that stay failed (nobody rejects them) once, after the orphan TTL.
ALTER TABLE proposals ADD COLUMN engine_thread_deleted_at TEXT;

-- Decided proposals with no cleanup pending were scheduled and cleaned already.
UPDATE proposals SET engine_thread_deleted_at = COALESCE(resolved_at, completed_at, created_at)
WHERE engine_cleanup_pending = 0 AND status IN ('approved', 'rejected', 'cancelled');
