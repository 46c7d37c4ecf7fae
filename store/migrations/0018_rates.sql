-- 0018: 5-minute traffic samples, for the percentiles and peaks of reports
-- (issue 16). kind is 1 for a router (k = ''), 2 for an interface (k = its
-- ifIndex in decimal), 3 for a subscriber (k = its name); a is download
-- (interface: in) and b upload (interface: out), in bytes.
--
-- rate5 holds the samples of the last day or two, written additively at
-- each rollup flush (t is the start of the 5 minutes, unix seconds). Once
-- a UTC day is over its samples move into one rate5_d row per entity: x is
-- a version byte then, for each of the day's 288 samples, a and b as
-- unsigned varints. Both are kept as long as the hour rollups.
CREATE TABLE rate5 (
	kind INTEGER NOT NULL, src INTEGER NOT NULL, k TEXT NOT NULL, t INTEGER NOT NULL,
	a INTEGER NOT NULL, b INTEGER NOT NULL,
	PRIMARY KEY (kind, src, k, t)
) WITHOUT ROWID;
CREATE INDEX rate5_t ON rate5 (t);
CREATE TABLE rate5_d (
	kind INTEGER NOT NULL, src INTEGER NOT NULL, k TEXT NOT NULL, d INTEGER NOT NULL,
	x BLOB NOT NULL,
	PRIMARY KEY (kind, src, k, d)
) WITHOUT ROWID;
CREATE INDEX rate5_d_d ON rate5_d (d);
-- Every entity of rate5_d and the first and last day it has samples, so
-- that a report reads only the entities of its period.
CREATE TABLE rate5_keys (
	kind INTEGER NOT NULL, src INTEGER NOT NULL, k TEXT NOT NULL,
	first INTEGER NOT NULL, last INTEGER NOT NULL,
	PRIMARY KEY (kind, src, k)
) WITHOUT ROWID;

-- The summaries of closed periods (calendar months of reports), computed
-- once: per kind, period [f, t) and percentile, one row per entity, and a
-- rate_done row once every entity is in. Rows of a period are dropped when
-- samples inside it change (late flows).
CREATE TABLE rate_sum (
	kind INTEGER NOT NULL, f INTEGER NOT NULL, t INTEGER NOT NULL, pct REAL NOT NULL,
	src INTEGER NOT NULL, k TEXT NOT NULL,
	a INTEGER NOT NULL, b INTEGER NOT NULL,
	peak_a INTEGER NOT NULL, peak_a_t INTEGER NOT NULL, peak_b INTEGER NOT NULL, peak_b_t INTEGER NOT NULL,
	pct_a INTEGER NOT NULL, pct_b INTEGER NOT NULL, samples INTEGER NOT NULL,
	apps BLOB NOT NULL, -- a subscriber's 10 largest applications: (uvarint length, key, uvarint bytes)...
	PRIMARY KEY (kind, f, t, pct, src, k)
) WITHOUT ROWID;
CREATE TABLE rate_done (
	kind INTEGER NOT NULL, f INTEGER NOT NULL, t INTEGER NOT NULL, pct REAL NOT NULL,
	made INTEGER NOT NULL,
	PRIMARY KEY (kind, f, t, pct)
) WITHOUT ROWID;

-- Each subscriber's traffic per application, per router and UTC day,
-- written additively at each rollup flush (app is the key of the
-- application rollups). Once a day is over its rows are packed into one
-- subapp_day row per subscriber: x holds the day's 10 largest
-- applications and the rest (app '*'), each as (uvarint key length, key,
-- uvarint bytes both ways), a month of a thousand subscribers being 30 000
-- rows instead of 330 000.
CREATE TABLE subapp_d (
	t INTEGER NOT NULL, src INTEGER NOT NULL, sub TEXT NOT NULL, app BLOB NOT NULL,
	down_bytes INTEGER NOT NULL, up_bytes INTEGER NOT NULL, flows INTEGER NOT NULL,
	PRIMARY KEY (t, src, sub, app)
) WITHOUT ROWID;
CREATE TABLE subapp_day (
	t INTEGER NOT NULL, src INTEGER NOT NULL, sub TEXT NOT NULL, x BLOB NOT NULL,
	PRIMARY KEY (t, src, sub)
) WITHOUT ROWID;
