-- Top-N rollups by UTC day (top_d, top_d_done), as the SQLite store's
-- top_d: the writer makes a day from its hours (top_h) once every hour of
-- it is rolled up, each day, dimension, source and direction cut again to
-- the top-k keys by bytes and one "other" row, so that a list over weeks
-- reads a few thousand rows a dimension rather than every hour's. TTL:
-- clickhouse.hour-ttl.
CREATE TABLE IF NOT EXISTS {{.DB}}.top_d AS {{.DB}}.top_h
ENGINE = SummingMergeTree((bytes, packets, flows))
PARTITION BY toYYYYMM(t)
ORDER BY (site, dim, t, src, dir, other, addr, peer, n, s)
TTL t + INTERVAL {{.HourTTL}} SECOND
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {{.DB}}.top_d_done AS {{.DB}}.top_done
ENGINE = ReplacingMergeTree
ORDER BY (site, t)
TTL t + INTERVAL {{.HourTTL}} SECOND
SETTINGS non_replicated_deduplication_window = 1000;
