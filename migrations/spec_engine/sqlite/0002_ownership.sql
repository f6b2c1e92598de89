-- Thread ownership for replicas (docs/event-path-and-replicas.md "Ownership: leases and epochs").
-- owner: id of the replica running the thread ('' = nobody yet); lease_expires_at: database
-- clock, epoch milliseconds (0 = expired/released); epoch: bumped by every claim, fences writes.
-- Threads left queued/running by an older engine get an expired lease, so any replica claims them.
ALTER TABLE threads ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE threads ADD COLUMN lease_expires_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE threads ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
CREATE INDEX threads_owner_idx ON threads (owner);
CREATE INDEX threads_lease_idx ON threads (status, lease_expires_at);
