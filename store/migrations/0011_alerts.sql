-- Alerts (issue 14): what the detectors found, from open to resolved, with
-- their evidence; the mitigation audit log and the notification log.
CREATE TABLE alerts (
	id           INTEGER PRIMARY KEY,
	kind         TEXT    NOT NULL,
	severity     TEXT    NOT NULL,
	router_id    INTEGER NOT NULL DEFAULT 0,
	router       TEXT    NOT NULL DEFAULT '',
	target       TEXT    NOT NULL DEFAULT '',
	subscriber   TEXT    NOT NULL DEFAULT '',
	direction    TEXT    NOT NULL DEFAULT '',
	started      INTEGER NOT NULL,
	updated      INTEGER NOT NULL,
	ended        INTEGER,
	peak_bps     REAL    NOT NULL DEFAULT 0,
	peak_pps     REAL    NOT NULL DEFAULT 0,
	peak_fps     REAL    NOT NULL DEFAULT 0,
	peak_at      INTEGER NOT NULL DEFAULT 0,
	summary      TEXT    NOT NULL DEFAULT '',
	evidence     TEXT    NOT NULL DEFAULT '{}',
	acked_by     TEXT    NOT NULL DEFAULT '',
	acked_at     INTEGER
);
CREATE INDEX alerts_active ON alerts (ended) WHERE ended IS NULL;
CREATE INDEX alerts_started ON alerts (started);

CREATE TABLE mitigation_actions (
	id        INTEGER PRIMARY KEY,
	at        INTEGER NOT NULL,
	alert_id  INTEGER NOT NULL DEFAULT 0,
	router    TEXT    NOT NULL DEFAULT '',
	action    TEXT    NOT NULL,
	kind      TEXT    NOT NULL,
	list      TEXT    NOT NULL DEFAULT '',
	address   TEXT    NOT NULL DEFAULT '',
	timeout_ms INTEGER NOT NULL DEFAULT 0,
	dry_run   INTEGER NOT NULL DEFAULT 0,
	result    TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX mitigation_actions_alert ON mitigation_actions (alert_id);

CREATE TABLE notification_attempts (
	id        INTEGER PRIMARY KEY,
	at        INTEGER NOT NULL,
	alert_id  INTEGER NOT NULL DEFAULT 0,
	channel   TEXT    NOT NULL,
	event     TEXT    NOT NULL,
	attempt   INTEGER NOT NULL DEFAULT 1,
	ok        INTEGER NOT NULL DEFAULT 0,
	error     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX notification_attempts_alert ON notification_attempts (alert_id);
