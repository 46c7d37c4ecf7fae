-- Top-N rollups: each hour's traffic per dimension key, source and
-- direction (dim is store.Dimension: 1 local host, 2 remote host, 3 remote
-- AS, 4 application, 5 country, 6 conversation, 7 subscriber, 8 protocol,
-- 9 domain, 16 router and direction, 18 input and 19 output interface),
-- bytes and packets scaled by sampling. The key is in addr (an address),
-- peer (the conversation's remote), n (a number: AS, protocol, interface, or
-- protocol * 65536 + service port of an unnamed application) and s (a
-- name). Every key is kept (SQLite keeps the top-K of each bucket and
-- folds the rest into "other"): a top-N list over days reads these hours
-- and the raw flows of the partial hours at its ends, and is exact.
-- TTL: clickhouse.hour-ttl.
CREATE TABLE IF NOT EXISTS {{.DB}}.top_h
(
    site LowCardinality(String),
    dim UInt8,
    t DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    src Int64,
    dir UInt8,
    addr IPv6,
    peer IPv6,
    n UInt64,
    s String,
    bytes UInt64,
    packets UInt64,
    flows UInt64
)
ENGINE = SummingMergeTree((bytes, packets, flows))
PARTITION BY toYYYYMM(t)
ORDER BY (site, dim, t, src, dir, addr, peer, n, s)
TTL t + INTERVAL {{.HourTTL}} SECOND;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.top_h_mv TO {{.DB}}.top_h AS
SELECT site, k.1 AS dim, toStartOfHour(t) AS t, src, dir, k.2 AS addr, k.3 AS peer, k.4 AS n, k.5 AS s,
    sum(bytes * if(sampling > 1, sampling, 1)) AS bytes,
    sum(packets * if(sampling > 1, sampling, 1)) AS packets,
    count() AS flows
FROM {{.DB}}.flows
ARRAY JOIN [
    tuple(toUInt8(1), local, toIPv6('::'), toUInt64(0), ''),
    tuple(toUInt8(2), remote, toIPv6('::'), toUInt64(0), ''),
    tuple(toUInt8(3), toIPv6('::'), toIPv6('::'), toUInt64(remote_as), ''),
    tuple(toUInt8(4), toIPv6('::'), toIPv6('::'), if(application = '', toUInt64(proto) * 65536 + service_port, toUInt64(0)), toString(application)),
    tuple(toUInt8(5), toIPv6('::'), toIPv6('::'), toUInt64(0), toString(remote_country)),
    tuple(toUInt8(6), local, remote, toUInt64(0), ''),
    tuple(toUInt8(7), toIPv6('::'), toIPv6('::'), toUInt64(0), toString(subscriber)),
    tuple(toUInt8(8), toIPv6('::'), toIPv6('::'), toUInt64(proto), ''),
    tuple(toUInt8(9), toIPv6('::'), toIPv6('::'), toUInt64(0), toString(domain)),
    tuple(toUInt8(16), toIPv6('::'), toIPv6('::'), toUInt64(0), ''),
    tuple(toUInt8(18), toIPv6('::'), toIPv6('::'), toUInt64(in_if), ''),
    tuple(toUInt8(19), toIPv6('::'), toIPv6('::'), toUInt64(out_if), '')
] AS k
GROUP BY site, dim, t, src, dir, addr, peer, n, s;
