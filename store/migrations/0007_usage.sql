-- 0007: traffic per subscriber, every subscriber (no top-K), per router:
-- by hour (kept usage-hour-retention) and by UTC day (kept hour-retention).
-- Written additively at each rollup flush from the flows whose direction is
-- download or upload and whose subscriber is known.
CREATE TABLE usage_h (
	t INTEGER NOT NULL, src INTEGER NOT NULL, sub TEXT NOT NULL,
	down_bytes INTEGER NOT NULL, up_bytes INTEGER NOT NULL,
	down_packets INTEGER NOT NULL, up_packets INTEGER NOT NULL, flows INTEGER NOT NULL,
	PRIMARY KEY (t, src, sub)
) WITHOUT ROWID;
CREATE TABLE usage_d (
	t INTEGER NOT NULL, src INTEGER NOT NULL, sub TEXT NOT NULL,
	down_bytes INTEGER NOT NULL, up_bytes INTEGER NOT NULL,
	down_packets INTEGER NOT NULL, up_packets INTEGER NOT NULL, flows INTEGER NOT NULL,
	PRIMARY KEY (t, src, sub)
) WITHOUT ROWID;
