-- The per-user cap of refinements in progress (domain/run_quota.hpp) counts a user's
-- `processing` proposals on every refinement; without this index that count read every
-- processing proposal of every user (20% of the orchestrator's CPU at 1,000 refinements at once).
-- Runs have the same index since 0006 (runs_user_status).
CREATE INDEX proposals_user_status ON proposals (created_by_user_id, status);
