-- Two routers behind one address (issue 13): the address a router exports
-- its flows from when flowbox pinned it with the src-address of its
-- traffic-flow target; '' when flowbox did not. No two routers share one.
ALTER TABLE routers ADD COLUMN exporter_addr TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX routers_exporter_addr ON routers (exporter_addr) WHERE exporter_addr <> '';
