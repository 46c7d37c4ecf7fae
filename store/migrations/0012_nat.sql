-- 0012: the NAT-mapping store (issue 15): which inside address and port a
-- router translated to a public address and port, and when, kept for
-- store.nat-retention. Mappings live in one table per UTC day of their
-- last flow, nat_YYYYMMDD, created by the writer (see
-- store/flowdb/natmap.go), so that retention drops whole tables; this
-- registry lists them.
CREATE TABLE nat_days (
	day      INTEGER PRIMARY KEY,       -- unix seconds of the UTC day's start
	name     TEXT    NOT NULL,          -- nat_YYYYMMDD
	max_span INTEGER NOT NULL DEFAULT 0, -- ms: the longest last_seen - first_seen of its rows
	max_last INTEGER NOT NULL DEFAULT 0, -- unix ms: the latest last_seen of its rows
	rows     INTEGER NOT NULL DEFAULT 0  -- rows inserted
);
