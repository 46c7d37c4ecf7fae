-- Traffic totals by minute and by hour, per source and direction, and per
-- interface (side 0 in, 1 out), as the SQLite store's tot_m, tot_h, if_m
-- and if_h: counters scaled by the sampling rate. Materialized views fill
-- them at insert into flows (the hours from the minutes: views cascade); SummingMergeTree adds the rows of one key as
-- parts merge, so a query sums them. TTLs: clickhouse.minute-ttl and
-- clickhouse.hour-ttl.
CREATE TABLE IF NOT EXISTS {{.DB}}.tot_m
(
    site LowCardinality(String),
    t DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    src Int64,
    dir UInt8,
    bytes UInt64,
    packets UInt64,
    flows UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMMDD(t)
ORDER BY (site, t, src, dir)
TTL t + INTERVAL {{.MinuteTTL}} SECOND;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.tot_m_mv TO {{.DB}}.tot_m AS
SELECT site, toStartOfMinute(t) AS t, src, dir,
    sum(bytes * if(sampling > 1, sampling, 1)) AS bytes,
    sum(packets * if(sampling > 1, sampling, 1)) AS packets,
    count() AS flows
FROM {{.DB}}.flows
GROUP BY site, t, src, dir;

CREATE TABLE IF NOT EXISTS {{.DB}}.tot_h AS {{.DB}}.tot_m
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(t)
ORDER BY (site, t, src, dir)
TTL t + INTERVAL {{.HourTTL}} SECOND;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.tot_h_mv TO {{.DB}}.tot_h AS
SELECT site, toStartOfHour(t) AS t, src, dir,
    sum(bytes) AS bytes,
    sum(packets) AS packets,
    sum(flows) AS flows
FROM {{.DB}}.tot_m
GROUP BY site, t, src, dir;

CREATE TABLE IF NOT EXISTS {{.DB}}.if_m
(
    site LowCardinality(String),
    t DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    src Int64,
    side UInt8,
    ifx UInt32,
    bytes UInt64,
    packets UInt64,
    flows UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMMDD(t)
ORDER BY (site, t, src, side, ifx)
TTL t + INTERVAL {{.MinuteTTL}} SECOND;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.if_m_mv TO {{.DB}}.if_m AS
SELECT site, toStartOfMinute(t) AS t, src, s.1 AS side, s.2 AS ifx,
    sum(bytes * if(sampling > 1, sampling, 1)) AS bytes,
    sum(packets * if(sampling > 1, sampling, 1)) AS packets,
    count() AS flows
FROM {{.DB}}.flows
ARRAY JOIN [(toUInt8(0), in_if), (toUInt8(1), out_if)] AS s
GROUP BY site, t, src, side, ifx;

CREATE TABLE IF NOT EXISTS {{.DB}}.if_h AS {{.DB}}.if_m
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(t)
ORDER BY (site, t, src, side, ifx)
TTL t + INTERVAL {{.HourTTL}} SECOND;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.if_h_mv TO {{.DB}}.if_h AS
SELECT site, toStartOfHour(t) AS t, src, side, ifx,
    sum(bytes) AS bytes,
    sum(packets) AS packets,
    sum(flows) AS flows
FROM {{.DB}}.if_m
GROUP BY site, t, src, side, ifx
