-- Raw flows, one row a flow, as the SQLite store keeps them (the fields of
-- store.Flow it stores). site names the collector: several may share a
-- cluster. t is the flow's end (its filing time) in ms, duration its
-- length. src is the flow's source as the queries filter and group it:
-- its router's id, or minus its exporter's id when no router matched.
-- local, remote, remote_as, remote_country and service_port are derived
-- at insert (store.Flow.LocalRemote, RemoteCountry, ServicePort), so that
-- filters and rankings read one column. id numbers a writer's flows
-- (from a random start): it orders the flows of one millisecond in a
-- search. Addresses are IPv6 (IPv4 as ::ffff:a.b.c.d; :: when
-- absent). Partitions are UTC days; the order serves the dashboard's
-- queries (a time range, a source, a direction or protocol, a local host)
-- and puts a subscriber's flows together (30.8 bytes a flow on disk, 35.8
-- without local in the order: BenchmarkInsert); TTL drops what is older
-- than clickhouse.raw-ttl.
CREATE TABLE IF NOT EXISTS {{.DB}}.flows
(
    site LowCardinality(String),
    t DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    duration UInt32 CODEC(T64, ZSTD(1)),
    src Int64 CODEC(T64, ZSTD(1)),
    router Int64 CODEC(T64, ZSTD(1)),
    exporter IPv6 CODEC(ZSTD(1)),
    exporter_port UInt16 CODEC(T64, ZSTD(1)),
    version UInt8,
    dir UInt8,
    proto UInt8,
    src_addr IPv6 CODEC(ZSTD(1)),
    dst_addr IPv6 CODEC(ZSTD(1)),
    src_port UInt16 CODEC(T64, ZSTD(1)),
    dst_port UInt16 CODEC(T64, ZSTD(1)),
    nat_src_addr IPv6 CODEC(ZSTD(1)),
    nat_dst_addr IPv6 CODEC(ZSTD(1)),
    nat_src_port UInt16 CODEC(T64, ZSTD(1)),
    nat_dst_port UInt16 CODEC(T64, ZSTD(1)),
    in_if UInt32 CODEC(T64, ZSTD(1)),
    out_if UInt32 CODEC(T64, ZSTD(1)),
    src_as UInt32 CODEC(T64, ZSTD(1)),
    dst_as UInt32 CODEC(T64, ZSTD(1)),
    bytes UInt64 CODEC(T64, ZSTD(1)),
    packets UInt64 CODEC(T64, ZSTD(1)),
    sampling UInt32 CODEC(T64, ZSTD(1)),
    tcp_flags UInt8,
    subscriber LowCardinality(String),
    application LowCardinality(String),
    src_country LowCardinality(String),
    dst_country LowCardinality(String),
    domain LowCardinality(String),
    local IPv6 CODEC(ZSTD(1)),
    remote IPv6 CODEC(ZSTD(1)),
    remote_as UInt32 CODEC(T64, ZSTD(1)),
    remote_country LowCardinality(String),
    service_port UInt16 CODEC(T64, ZSTD(1)),
    id UInt32 CODEC(Delta, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(t)
ORDER BY (site, toStartOfFiveMinutes(t), src, dir, proto, local)
TTL toDateTime(t) + INTERVAL {{.RawTTL}} SECOND
