-- 0005: raw partition format 2 and its host index (see codec.go and
-- hostindex.go). New partitions are tables raw_YYYYMMDDHHMM (id, x) with a
-- host index table rawx_YYYYMMDDHHMM; the format 1 partitions of older
-- versions (flows_YYYYMMDDHHMM) stay readable until retention drops them.
CREATE TABLE raw_partitions (
	name   TEXT    PRIMARY KEY,
	start  INTEGER NOT NULL,          -- unix seconds
	format INTEGER NOT NULL,          -- 1: flows_* (read only), 2: raw_*
	closed INTEGER NOT NULL DEFAULT 0 -- format 1: address indexes built; format 2: first tail spilled
);
INSERT INTO raw_partitions (name, start, format, closed) SELECT name, start, 1, indexed FROM partitions;
DROP TABLE partitions;
CREATE INDEX raw_partitions_start ON raw_partitions (start);

-- Host index segments of format 2 partitions: rows first_id..last_id,
-- buckets hash buckets, and blocks the t range of each block of block_rows
-- rows (uvarint pairs: min, max - min).
CREATE TABLE raw_segments (
	part       TEXT    NOT NULL,
	seg        INTEGER NOT NULL,
	first_id   INTEGER NOT NULL,
	last_id    INTEGER NOT NULL,
	buckets    INTEGER NOT NULL,
	block_rows INTEGER NOT NULL,
	blocks     BLOB    NOT NULL,
	PRIMARY KEY (part, seg)
) WITHOUT ROWID;

-- Interned explicit addresses of raw rows (a router's public address...).
CREATE TABLE addrs (
	id   INTEGER PRIMARY KEY,
	addr BLOB NOT NULL UNIQUE -- 4 or 16 bytes
);

-- Day top-K rollups (UTC days), rebuilt from the hour ones once a day is
-- over, so that tops over weeks read a few thousand rows.
CREATE TABLE top_d (
	dim INTEGER NOT NULL, t INTEGER NOT NULL, src INTEGER NOT NULL, dir INTEGER NOT NULL, k BLOB NOT NULL,
	bytes INTEGER NOT NULL, packets INTEGER NOT NULL, flows INTEGER NOT NULL,
	PRIMARY KEY (dim, t, src, dir, k)
) WITHOUT ROWID;

-- Days whose hour rollups changed and whose day rollups must be (re)built.
CREATE TABLE rollup_pending_day (
	day INTEGER PRIMARY KEY -- unix seconds
);
