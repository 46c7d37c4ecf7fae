-- 0002: subscriber history (enrichment). One row per period during which
-- an address or prefix belonged to a subscriber, as learned from a router
-- (DHCP lease, PPP session, simple queue, ARP) or imported from CSV.
CREATE TABLE subscribers (
	id          INTEGER PRIMARY KEY,
	router_id   INTEGER NOT NULL DEFAULT 0,  -- 0 for imported rows
	prefix      TEXT    NOT NULL,            -- CIDR; /32 or /128 for hosts
	first_addr  BLOB    NOT NULL,            -- 16 bytes (IPv4 mapped)
	last_addr   BLOB    NOT NULL,            -- 16 bytes (IPv4 mapped)
	name        TEXT    NOT NULL,
	customer_id TEXT    NOT NULL DEFAULT '',
	mac         INTEGER NOT NULL DEFAULT 0,  -- 48-bit MAC, 0 when unknown
	source      TEXT    NOT NULL,            -- csv, queue, ppp, dhcp, arp
	valid_from  INTEGER NOT NULL,            -- unix ms
	valid_to    INTEGER                      -- unix ms, NULL while current
);
CREATE INDEX subscribers_addr ON subscribers(first_addr, last_addr);
CREATE INDEX subscribers_valid_to ON subscribers(valid_to);
