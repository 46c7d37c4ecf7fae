-- The ingest pipeline (issue 13): exporter trust and data sets that never
-- got a template, kept apart from dropped flows.
ALTER TABLE collector_stats ADD COLUMN trusted INTEGER NOT NULL DEFAULT 1;
ALTER TABLE collector_stats ADD COLUMN sets_no_template INTEGER NOT NULL DEFAULT 0;

-- Exporters an operator accepted from the console ("Unknown exporters"),
-- added to collector.allowed-exporters.
CREATE TABLE allowed_exporters (
	prefix     TEXT    PRIMARY KEY,
	added_by   TEXT    NOT NULL DEFAULT '',
	added_at   INTEGER NOT NULL DEFAULT 0
);
