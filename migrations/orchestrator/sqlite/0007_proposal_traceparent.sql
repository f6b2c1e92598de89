-- The W3C traceparent of the request that started a proposal's refinement (docs/observability.md):
-- the tracker that follows the run, on any replica and after a restart, puts its spans into that
-- trace, and the WebSocket proxy links its stream spans to it. '' for proposals started before.
ALTER TABLE proposals ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
