-- 5-minute rates for the reports' percentiles and peaks (as the SQLite
-- store's rate5): per router (kind 1: download a, upload b), interface
-- (kind 2, k its ifIndex: in a, out b; ifIndex 0, the router itself, has
-- none) and subscriber (kind 3, k its name), bytes scaled by sampling, a
-- row per entity and 5 minutes of the flows' ends. And each subscriber's
-- traffic per application and UTC day (subapp_d; app '' with the
-- protocol and service port when the flow had no application), for the
-- largest applications of a subscriber report. TTL: clickhouse.hour-ttl.
CREATE TABLE IF NOT EXISTS {{.DB}}.rate5
(
    site LowCardinality(String),
    kind UInt8,
    src Int64,
    k String,
    t DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    a UInt64,
    b UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(t)
ORDER BY (site, kind, src, k, t)
TTL t + INTERVAL {{.HourTTL}} SECOND;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.rate5_router_mv TO {{.DB}}.rate5 AS
SELECT site, toUInt8(1) AS kind, src, '' AS k, toStartOfFiveMinutes(t) AS t,
    sum(if(dir = 1, bytes * if(sampling > 1, sampling, 1), 0)) AS a,
    sum(if(dir = 2, bytes * if(sampling > 1, sampling, 1), 0)) AS b
FROM {{.DB}}.flows
WHERE dir IN (1, 2)
GROUP BY site, src, t;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.rate5_if_mv TO {{.DB}}.rate5 AS
SELECT site, toUInt8(2) AS kind, src, toString(s.2) AS k, toStartOfFiveMinutes(t) AS t,
    sum(if(s.1 = 0, bytes * if(sampling > 1, sampling, 1), 0)) AS a,
    sum(if(s.1 = 1, bytes * if(sampling > 1, sampling, 1), 0)) AS b
FROM {{.DB}}.flows
ARRAY JOIN [(toUInt8(0), in_if), (toUInt8(1), out_if)] AS s
WHERE s.2 != 0
GROUP BY site, src, k, t;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.rate5_sub_mv TO {{.DB}}.rate5 AS
SELECT site, toUInt8(3) AS kind, src, subscriber AS k, toStartOfFiveMinutes(t) AS t,
    sum(if(dir = 1, bytes * if(sampling > 1, sampling, 1), 0)) AS a,
    sum(if(dir = 2, bytes * if(sampling > 1, sampling, 1), 0)) AS b
FROM {{.DB}}.flows
WHERE subscriber != '' AND dir IN (1, 2)
GROUP BY site, src, k, t;

CREATE TABLE IF NOT EXISTS {{.DB}}.subapp_d
(
    site LowCardinality(String),
    t DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    src Int64,
    sub String,
    app String,
    proto UInt8,
    port UInt16,
    bytes UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(t)
ORDER BY (site, t, src, sub, app, proto, port)
TTL t + INTERVAL {{.HourTTL}} SECOND;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.subapp_d_mv TO {{.DB}}.subapp_d AS
SELECT site, toStartOfDay(t) AS t, src, subscriber AS sub, application AS app,
    if(application = '', proto, 0) AS proto, if(application = '', service_port, 0) AS port,
    sum(bytes * if(sampling > 1, sampling, 1)) AS bytes
FROM {{.DB}}.flows
WHERE subscriber != '' AND dir IN (1, 2)
GROUP BY site, t, src, sub, app, proto, port;
