-- SQL that CockroachDB also runs (store.go, "PostgreSQL and CockroachDB").
-- Every statement may be run again after a partial run: on CockroachDB each
-- runs as its own implicit transaction.

-- Lock rows (Options.LockRows, always on CockroachDB): a unit of work
-- upserts the rows of its lock ids (update.go, LockID), which writes them
-- and so holds their row locks to COMMIT. Rows are never deleted.
CREATE TABLE IF NOT EXISTS dream_locks (
	id bigint PRIMARY KEY,
	n  bigint NOT NULL DEFAULT 0 -- times taken: the write that locks the row
);

-- The change log's sequence: a unit that logs changes takes the next
-- numbers from this one row (UPDATE … RETURNING) and inserts changes.seq
-- itself; the row's lock, held to COMMIT, puts the numbers in commit order.
CREATE TABLE IF NOT EXISTS change_seq (
	id  integer PRIMARY KEY,
	seq bigint NOT NULL
);
INSERT INTO change_seq (id, seq) SELECT 1, coalesce(max(seq), 0) FROM changes
	ON CONFLICT (id) DO NOTHING;
