-- Outbox entries are leased to the node that delivers them: lease_until is
-- the lease's end in unix milliseconds of the database's clock (0: none).
ALTER TABLE outbox ADD COLUMN lease_until bigint NOT NULL DEFAULT 0;
