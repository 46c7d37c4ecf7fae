-- The same by minute (top_m, top_m_done), for the partial hours at the
-- ends of a range and the short ranges: the writer fills each minute a
-- little after it is over, from the time it first runs on (it does not go
-- back more than 2 hours). TTL: clickhouse.minute-ttl.
CREATE TABLE IF NOT EXISTS {{.DB}}.top_m AS {{.DB}}.top_h
ENGINE = SummingMergeTree((bytes, packets, flows))
PARTITION BY toYYYYMMDD(t)
ORDER BY (site, dim, t, src, dir, other, addr, peer, n, s)
TTL t + INTERVAL {{.MinuteTTL}} SECOND
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {{.DB}}.top_m_done AS {{.DB}}.top_done
ENGINE = ReplacingMergeTree
ORDER BY (site, t)
TTL t + INTERVAL {{.MinuteTTL}} SECOND
SETTINGS non_replicated_deduplication_window = 1000;
