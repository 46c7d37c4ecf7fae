-- 0016: each subscriber's traffic per remote domain (issue 18), per router
-- and UTC day. Written additively at each rollup flush from the download
-- and upload flows of a known subscriber; once a day is over, only its 20
-- largest domains per subscriber stay, the rest summed in dom = '*'.
-- Kept as long as the hour rollups.
CREATE TABLE subdom_d (
	src INTEGER NOT NULL, sub TEXT NOT NULL, t INTEGER NOT NULL, dom TEXT NOT NULL,
	down_bytes INTEGER NOT NULL, up_bytes INTEGER NOT NULL, flows INTEGER NOT NULL,
	PRIMARY KEY (src, sub, t, dom)
) WITHOUT ROWID;
CREATE INDEX subdom_d_t ON subdom_d (t);
