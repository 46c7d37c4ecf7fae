-- 0004: interface name history (enrichment). One row per period during
-- which a router's SNMP ifIndex had a name, as polled from the router
-- (/interface name.oid) or taken from the inventory. RouterOS gives dynamic
-- interfaces (PPPoE, L2TP) a new ifIndex per session and reuses numbers.
CREATE TABLE interface_names (
	id         INTEGER PRIMARY KEY,
	router_id  INTEGER NOT NULL,
	if_index   INTEGER NOT NULL,
	name       TEXT    NOT NULL,
	valid_from INTEGER NOT NULL,  -- unix ms; 0 for the first name learned
	valid_to   INTEGER            -- unix ms, NULL while current
);
CREATE INDEX interface_names_key ON interface_names(router_id, if_index, valid_from);
CREATE INDEX interface_names_valid_to ON interface_names(valid_to);
