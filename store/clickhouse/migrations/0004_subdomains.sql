-- A subscriber's traffic with each remote domain (domain '' when the
-- remote side had no known name), per source and UTC day, as the SQLite
-- store's subdom_d but every domain kept (SQLite keeps a day's 20
-- largest and folds the rest). Ordered by subscriber first: a report
-- reads one subscriber. TTL: clickhouse.hour-ttl.
CREATE TABLE IF NOT EXISTS {{.DB}}.subdom_d
(
    site LowCardinality(String),
    sub String,
    t DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    src Int64,
    dom String,
    down_bytes UInt64,
    up_bytes UInt64,
    flows UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(t)
ORDER BY (site, sub, t, src, dom)
TTL t + INTERVAL {{.HourTTL}} SECOND;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.subdom_d_mv TO {{.DB}}.subdom_d AS
SELECT site, subscriber AS sub, toStartOfDay(t) AS t, src, domain AS dom,
    sum(if(dir = 1, bytes * if(sampling > 1, sampling, 1), 0)) AS down_bytes,
    sum(if(dir = 2, bytes * if(sampling > 1, sampling, 1), 0)) AS up_bytes,
    count() AS flows
FROM {{.DB}}.flows
WHERE subscriber != '' AND dir IN (1, 2)
GROUP BY site, sub, t, src, dom
