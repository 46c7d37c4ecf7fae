-- Idempotent inserts: the writer names each insert (its first flow id and
-- count, insert_deduplication_token) and sends the same name when it
-- retries one that may have been stored (a timeout, a lost answer):
-- ClickHouse then stores it once, in the raw table and in every rollup
-- the views fill (deduplicate_blocks_in_dependent_materialized_views).
-- Each table remembers the names of its last 1000 inserts.
ALTER TABLE {{.DB}}.flows MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE {{.DB}}.tot_m MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE {{.DB}}.tot_h MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE {{.DB}}.if_m MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE {{.DB}}.if_h MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE {{.DB}}.usage_h MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE {{.DB}}.usage_d MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE {{.DB}}.subdom_d MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE {{.DB}}.nat MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE {{.DB}}.rate5 MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE {{.DB}}.subapp_d MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE {{.DB}}.top_h MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE {{.DB}}.top_done MODIFY SETTING non_replicated_deduplication_window = 1000;

