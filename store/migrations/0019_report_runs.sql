-- Scheduled reports (issue 16): every run of a schedule for a period, with
-- what became of each delivery (JSON list of store.ReportDelivery). A
-- schedule's period succeeds at most once (report_runs_ok), which keeps a
-- restart from sending it twice.
CREATE TABLE report_runs (
	id          INTEGER PRIMARY KEY,
	schedule    TEXT    NOT NULL,
	period      TEXT    NOT NULL,
	period_from INTEGER NOT NULL,
	period_to   INTEGER NOT NULL,
	started     INTEGER NOT NULL,
	finished    INTEGER,
	ok          INTEGER NOT NULL DEFAULT 0,
	catch_up    INTEGER NOT NULL DEFAULT 0,
	rows        INTEGER NOT NULL DEFAULT 0,
	deliveries  TEXT    NOT NULL DEFAULT '[]',
	error       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX report_runs_schedule ON report_runs (schedule, period_from);
CREATE UNIQUE INDEX report_runs_ok ON report_runs (schedule, period_from) WHERE ok = 1;
