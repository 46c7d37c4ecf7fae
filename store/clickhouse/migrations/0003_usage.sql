-- Subscriber usage, as the SQLite store's usage_h and usage_d: the
-- download and upload traffic of every known subscriber per source, by
-- hour (clickhouse.usage-hour-ttl) and by UTC day (clickhouse.hour-ttl).
-- Only download and upload flows of a named subscriber count. The days
-- are summed from the hours as they are inserted (views cascade).
CREATE TABLE IF NOT EXISTS {{.DB}}.usage_h
(
    site LowCardinality(String),
    t DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    src Int64,
    sub String,
    down_bytes UInt64,
    up_bytes UInt64,
    down_packets UInt64,
    up_packets UInt64,
    flows UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(t)
ORDER BY (site, t, src, sub)
TTL t + INTERVAL {{.UsageHourTTL}} SECOND;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.usage_h_mv TO {{.DB}}.usage_h AS
SELECT site, toStartOfHour(t) AS t, src, subscriber AS sub,
    sum(if(dir = 1, bytes * if(sampling > 1, sampling, 1), 0)) AS down_bytes,
    sum(if(dir = 2, bytes * if(sampling > 1, sampling, 1), 0)) AS up_bytes,
    sum(if(dir = 1, packets * if(sampling > 1, sampling, 1), 0)) AS down_packets,
    sum(if(dir = 2, packets * if(sampling > 1, sampling, 1), 0)) AS up_packets,
    count() AS flows
FROM {{.DB}}.flows
WHERE subscriber != '' AND dir IN (1, 2)
GROUP BY site, t, src, sub;

CREATE TABLE IF NOT EXISTS {{.DB}}.usage_d AS {{.DB}}.usage_h
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(t)
ORDER BY (site, t, src, sub)
TTL t + INTERVAL {{.HourTTL}} SECOND;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.usage_d_mv TO {{.DB}}.usage_d AS
SELECT site, toStartOfDay(t) AS t, src, sub,
    sum(down_bytes) AS down_bytes,
    sum(up_bytes) AS up_bytes,
    sum(down_packets) AS down_packets,
    sum(up_packets) AS up_packets,
    sum(flows) AS flows
FROM {{.DB}}.usage_h
GROUP BY site, t, src, sub
