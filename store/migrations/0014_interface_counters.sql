-- 0014: coverage (issue 17). The routers' interface counters, polled over
-- the API every minute, as deltas spread over the minutes they span (t is
-- the minute start in unix seconds, src the router id, ifx the ifIndex;
-- span_ms is how much of the minute the polls covered). ifctr_h is built
-- from the minutes of each finished hour. Both are kept as long as the
-- flow rollups of the same resolution (if_m, if_h).
CREATE TABLE ifctr_m (
	t INTEGER NOT NULL, src INTEGER NOT NULL, ifx INTEGER NOT NULL,
	rx_bytes INTEGER NOT NULL, tx_bytes INTEGER NOT NULL,
	rx_packets INTEGER NOT NULL, tx_packets INTEGER NOT NULL,
	span_ms INTEGER NOT NULL,
	PRIMARY KEY (t, src, ifx)
) WITHOUT ROWID;
CREATE TABLE ifctr_h (
	t INTEGER NOT NULL, src INTEGER NOT NULL, ifx INTEGER NOT NULL,
	rx_bytes INTEGER NOT NULL, tx_bytes INTEGER NOT NULL,
	rx_packets INTEGER NOT NULL, tx_packets INTEGER NOT NULL,
	span_ms INTEGER NOT NULL,
	PRIMARY KEY (t, src, ifx)
) WITHOUT ROWID;

-- What the counter poller last learned of each router: its poll counters
-- and the configuration that decides the diagnosis (JSON, store.CoverageState).
CREATE TABLE coverage_state (
	router_id INTEGER PRIMARY KEY,
	updated   INTEGER NOT NULL,
	state     TEXT    NOT NULL
);
