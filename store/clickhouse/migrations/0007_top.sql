-- Top-N rollups, as the SQLite store's: for each hour, dimension, source
-- and direction, the top-k keys by bytes (clickhouse.top-k, 100) and one
-- "other" row (other = 1, key empty) with the rest, bytes and packets
-- scaled by sampling. dim is store.Dimension: 1 local host, 2 remote host,
-- 3 remote AS, 4 application, 5 country, 6 conversation, 7 subscriber, 8
-- protocol, 9 domain, 16 router and direction, 18 input and 19 output
-- interface. The key is in addr (an address), peer (the conversation's
-- remote), n (a number: AS, protocol, interface, or protocol * 65536 +
-- service port of an unnamed application) and s (a name). The writer
-- fills an hour from its raw flows once it is over (top_done records it;
-- a view at insert would multiply every flow by 13 rows): a top-N list
-- reads the hours done and the raw flows of the rest. TTL:
-- clickhouse.hour-ttl.
CREATE TABLE IF NOT EXISTS {{.DB}}.top_h
(
    site LowCardinality(String),
    dim UInt8,
    t DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    src Int64,
    dir UInt8,
    other UInt8,
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
ORDER BY (site, dim, t, src, dir, other, addr, peer, n, s)
TTL t + INTERVAL {{.HourTTL}} SECOND;

CREATE TABLE IF NOT EXISTS {{.DB}}.top_done
(
    site LowCardinality(String),
    t DateTime('UTC'),
    done DateTime('UTC') DEFAULT now()
)
ENGINE = ReplacingMergeTree
ORDER BY (site, t)
TTL t + INTERVAL {{.HourTTL}} SECOND;
