-- 0015: visited domains (issue 18). The names remote addresses had, from
-- the routers' DNS caches (reverse = 0) or PTR lookups (reverse = 1), one
-- row per period: valid_from is when the address had the name at the
-- latest, valid_to when its TTL ran out, seen when it was last seen (unix
-- ms). router_id is the router whose cache held it last (0 for PTR).
CREATE TABLE dns_names (
	addr       BLOB    NOT NULL,            -- 16 bytes (IPv4 mapped)
	name       TEXT    NOT NULL,
	domain     TEXT    NOT NULL,
	reverse    INTEGER NOT NULL,
	valid_from INTEGER NOT NULL,
	valid_to   INTEGER NOT NULL,
	seen       INTEGER NOT NULL,
	router_id  INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (addr, name, reverse, valid_from)
) WITHOUT ROWID;
CREATE INDEX dns_names_valid_to ON dns_names(valid_to);
