-- Token usage of a thread's run (docs/engine-api.md#state): the sum of the usage its model calls
-- reported, sub-agents and calls before a restart included. Written with every checkpoint and
-- at the run's end, so a restarted engine keeps it.
ALTER TABLE threads ADD COLUMN input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE threads ADD COLUMN output_tokens BIGINT NOT NULL DEFAULT 0;
