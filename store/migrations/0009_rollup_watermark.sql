-- Rollup watermarks (issue 13): rolled is the last row id of a format 2
-- partition whose flow is in the rollups written to the database. Each
-- rollup flush sets it in its own transaction, so the rollups and the
-- watermark never disagree; at start the writer adds the rows beyond it
-- (written before a crash, their minute rollups lost with the process) to
-- its in-memory rollups again. NULL for a partition of an older flowbox,
-- whose shutdown wrote the rollups of every row: the next start sets it.
ALTER TABLE raw_partitions ADD COLUMN rolled INTEGER;
