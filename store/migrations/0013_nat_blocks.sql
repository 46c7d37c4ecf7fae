-- 0013: NAT mappings in blocks (issue 15). The day tables of format 2,
-- natb_YYYYMMDD, hold one row per router, public address and minute: a
-- delta-coded block of its mappings (see store/flowdb/natblock.go). The
-- writer converts the tables of format 1 (nat_YYYYMMDD, one row per
-- mapping) when it opens the store.
ALTER TABLE nat_days ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
