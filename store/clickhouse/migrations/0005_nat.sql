-- NAT mappings for abuse lookups (as the SQLite store's nat tables): the
-- inside address and port a customer used behind a public address and
-- port, from the flows that carry post-NAT fields. A flow gives a mapping
-- of its source (upstream: inside = source, public = post-NAT source, far
-- end = post-NAT destination) and one of its destination (downstream:
-- public = destination, inside = post-NAT destination, far end = source)
-- when the translation changed the address or the port. One row per
-- mapping and 5 minutes (of the flows' ends): the first flow's start
-- (down to the second), the last flow's end (up to the second), the flows,
-- the first far end and the distinct far ends.
-- A lookup reads the public address's rows (the order's prefix) and joins
-- a mapping's rows whose gaps are under 5 minutes. TTL:
-- clickhouse.nat-ttl (a year and more, for CGNAT records).
CREATE TABLE IF NOT EXISTS {{.DB}}.nat
(
    site LowCardinality(String),
    public IPv6,
    public_port UInt16 CODEC(ZSTD(1)),
    proto UInt8,
    bucket DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    router Int64,
    inside IPv6 CODEC(ZSTD(1)),
    inside_port UInt16 CODEC(ZSTD(1)),
    first SimpleAggregateFunction(min, DateTime('UTC')) CODEC(ZSTD(1)),
    last SimpleAggregateFunction(max, DateTime('UTC')) CODEC(ZSTD(1)),
    flows SimpleAggregateFunction(sum, UInt64) CODEC(T64, ZSTD(1)),
    -- The far end of the first flow: the least (start, address, port).
    remote SimpleAggregateFunction(min, Tuple(DateTime('UTC'), IPv6, UInt16)) CODEC(ZSTD(1)),
    -- Distinct far ends: the most of one insert's (approximate, as the
    -- SQLite store's count is).
    remotes SimpleAggregateFunction(max, UInt32) CODEC(T64, ZSTD(1))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (site, public, public_port, proto, bucket, router, inside, inside_port)
TTL bucket + INTERVAL {{.NATTTL}} SECOND;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.nat_mv TO {{.DB}}.nat AS
SELECT site, m.2 AS public, m.3 AS public_port, proto, toStartOfFiveMinutes(t) AS bucket, router, m.4 AS inside, m.5 AS inside_port,
    min(toDateTime(if(duration > 0 AND duration < 4294967295, t - toIntervalMillisecond(duration), t))) AS first,
    max(fromUnixTimestamp(toUInt32(intDiv(toUnixTimestamp64Milli(t) + 999, 1000)))) AS last,
    toUInt64(count()) AS flows,
    min(tuple(toDateTime(if(duration > 0 AND duration < 4294967295, t - toIntervalMillisecond(duration), t)), m.6, m.7)) AS remote,
    toUInt32(uniqExact(m.6, m.7)) AS remotes
FROM {{.DB}}.flows
ARRAY JOIN arrayFilter(x -> x.1, [
    tuple(src_addr NOT IN (toIPv6('::'), toIPv6('::ffff:0.0.0.0')) AND nat_src_addr NOT IN (toIPv6('::'), toIPv6('::ffff:0.0.0.0'))
            AND (nat_src_addr != src_addr OR (nat_src_port != 0 AND nat_src_port != src_port)),
        nat_src_addr, nat_src_port, src_addr, src_port,
        if(nat_dst_addr NOT IN (toIPv6('::'), toIPv6('::ffff:0.0.0.0')), nat_dst_addr, dst_addr),
        if(nat_dst_addr NOT IN (toIPv6('::'), toIPv6('::ffff:0.0.0.0')), nat_dst_port, dst_port)),
    tuple(dst_addr NOT IN (toIPv6('::'), toIPv6('::ffff:0.0.0.0')) AND nat_dst_addr NOT IN (toIPv6('::'), toIPv6('::ffff:0.0.0.0'))
            AND (nat_dst_addr != dst_addr OR (nat_dst_port != 0 AND nat_dst_port != dst_port)),
        dst_addr, dst_port, nat_dst_addr, nat_dst_port, src_addr, src_port)
]) AS m
GROUP BY site, public, public_port, proto, bucket, router, inside, inside_port;
