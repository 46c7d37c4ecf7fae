CREATE INDEX alerts_active ON alerts (ended) WHERE ended IS NULL;
CREATE INDEX alerts_started ON alerts (started);
CREATE INDEX api_tokens_user ON api_tokens(user_id);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE INDEX console_sessions_expires ON console_sessions(expires_at);
CREATE INDEX console_sessions_user ON console_sessions(user_name);
CREATE INDEX dns_names_valid_to ON dns_names(valid_to);
CREATE INDEX interface_names_key ON interface_names(router_id, if_index, valid_from);
CREATE INDEX interface_names_valid_to ON interface_names(valid_to);
CREATE INDEX mitigation_actions_alert ON mitigation_actions (alert_id);
CREATE INDEX notification_attempts_alert ON notification_attempts (alert_id);
CREATE INDEX provision_runs_router ON provision_runs(router_id, ok, time);
CREATE INDEX rate5_d_d ON rate5_d (d);
CREATE INDEX rate5_t ON rate5 (t);
CREATE INDEX raw_partitions_start ON raw_partitions (start);
CREATE UNIQUE INDEX report_runs_ok ON report_runs (schedule, period_from) WHERE ok = 1;
CREATE INDEX report_runs_schedule ON report_runs (schedule, period_from);
CREATE UNIQUE INDEX routers_exporter_addr ON routers (exporter_addr) WHERE exporter_addr <> '';
CREATE INDEX subdom_d_t ON subdom_d (t);
CREATE INDEX subscribers_addr ON subscribers(first_addr, last_addr);
CREATE INDEX subscribers_valid_to ON subscribers(valid_to);
CREATE TABLE addrs (
	id   INTEGER PRIMARY KEY,
	addr BLOB NOT NULL UNIQUE -- 4 or 16 bytes
);
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
CREATE TABLE allowed_exporters (
	prefix     TEXT    PRIMARY KEY,
	added_by   TEXT    NOT NULL DEFAULT '',
	added_at   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE api_tokens (
	id         INTEGER PRIMARY KEY,
	name       TEXT    NOT NULL UNIQUE,
	hash       TEXT    NOT NULL UNIQUE, -- hex SHA-256 of the secret
	prefix     TEXT    NOT NULL,        -- first characters, for display
	created_at INTEGER NOT NULL,        -- unix ms
	last_used  INTEGER NOT NULL DEFAULT 0 -- unix ms, 0 = never
, user_id INTEGER REFERENCES users(id) ON DELETE CASCADE, role TEXT NOT NULL DEFAULT 'viewer' CHECK (role IN ('admin', 'operator', 'viewer')), expires_at INTEGER NOT NULL DEFAULT 0);
CREATE TABLE audit_log (
	id     INTEGER PRIMARY KEY,
	at     INTEGER NOT NULL,            -- unix ms
	actor  TEXT    NOT NULL,            -- user name, token:<name> (user), cli, or what was tried
	action TEXT    NOT NULL,            -- such as login, user.add, router.apply
	target TEXT    NOT NULL DEFAULT '', -- such as a user or router name
	detail TEXT    NOT NULL DEFAULT '',
	client TEXT    NOT NULL DEFAULT '', -- client address, or "local" for the CLI
	ok     INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE collector_stats (
	exporter        TEXT    PRIMARY KEY,
	router_id       INTEGER NOT NULL DEFAULT 0,
	packets         INTEGER NOT NULL DEFAULT 0,
	flows_received  INTEGER NOT NULL DEFAULT 0,
	flows_stored    INTEGER NOT NULL DEFAULT 0,
	flows_dropped   TEXT    NOT NULL DEFAULT '{}',
	decode_errors   TEXT    NOT NULL DEFAULT '{}',
	lost_flows      INTEGER NOT NULL DEFAULT 0,
	templates       INTEGER NOT NULL DEFAULT 0,
	first_seen      INTEGER NOT NULL DEFAULT 0,
	last_seen       INTEGER NOT NULL DEFAULT 0,
	last_template   INTEGER NOT NULL DEFAULT 0,
	pending_no_tmpl INTEGER NOT NULL DEFAULT 0,
	bytes           INTEGER NOT NULL DEFAULT 0,
	pkts_seen       INTEGER NOT NULL DEFAULT 0,
	updated_at      INTEGER NOT NULL DEFAULT 0
, trusted INTEGER NOT NULL DEFAULT 1, sets_no_template INTEGER NOT NULL DEFAULT 0);
CREATE TABLE console_sessions (
	hash       TEXT    PRIMARY KEY, -- hex SHA-256 of the cookie value
	user_name  TEXT    NOT NULL,
	created_at INTEGER NOT NULL,    -- unix ms
	expires_at INTEGER NOT NULL     -- unix ms
);
CREATE TABLE coverage_state (
	router_id INTEGER PRIMARY KEY,
	updated   INTEGER NOT NULL,
	state     TEXT    NOT NULL
);
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
CREATE TABLE exporters (
	id          INTEGER PRIMARY KEY,
	addr        BLOB    NOT NULL UNIQUE, -- 4 or 16 bytes
	router_id   INTEGER NOT NULL DEFAULT 0,
	first_flow  INTEGER NOT NULL DEFAULT 0, -- unix ms of the first stored flow
	last_flow   INTEGER NOT NULL DEFAULT 0, -- unix ms of the last stored flow
	flows       INTEGER NOT NULL DEFAULT 0, -- flows stored
	bytes       INTEGER NOT NULL DEFAULT 0, -- scaled by sampling rate
	packets     INTEGER NOT NULL DEFAULT 0, -- scaled by sampling rate
	dropped     TEXT    NOT NULL DEFAULT '{}' -- flows the store dropped, by reason (JSON)
);
CREATE TABLE if_h (
	t INTEGER NOT NULL, src INTEGER NOT NULL, ifx INTEGER NOT NULL, side INTEGER NOT NULL,
	bytes INTEGER NOT NULL, packets INTEGER NOT NULL, flows INTEGER NOT NULL,
	PRIMARY KEY (t, src, ifx, side)
) WITHOUT ROWID;
CREATE TABLE if_m (
	t INTEGER NOT NULL, src INTEGER NOT NULL, ifx INTEGER NOT NULL, side INTEGER NOT NULL,
	bytes INTEGER NOT NULL, packets INTEGER NOT NULL, flows INTEGER NOT NULL,
	PRIMARY KEY (t, src, ifx, side)
) WITHOUT ROWID;
CREATE TABLE ifctr_h (
	t INTEGER NOT NULL, src INTEGER NOT NULL, ifx INTEGER NOT NULL,
	rx_bytes INTEGER NOT NULL, tx_bytes INTEGER NOT NULL,
	rx_packets INTEGER NOT NULL, tx_packets INTEGER NOT NULL,
	span_ms INTEGER NOT NULL,
	PRIMARY KEY (t, src, ifx)
) WITHOUT ROWID;
CREATE TABLE ifctr_m (
	t INTEGER NOT NULL, src INTEGER NOT NULL, ifx INTEGER NOT NULL,
	rx_bytes INTEGER NOT NULL, tx_bytes INTEGER NOT NULL,
	rx_packets INTEGER NOT NULL, tx_packets INTEGER NOT NULL,
	span_ms INTEGER NOT NULL,
	PRIMARY KEY (t, src, ifx)
) WITHOUT ROWID;
CREATE TABLE interface_names (
	id         INTEGER PRIMARY KEY,
	router_id  INTEGER NOT NULL,
	if_index   INTEGER NOT NULL,
	name       TEXT    NOT NULL,
	valid_from INTEGER NOT NULL,  -- unix ms; 0 for the first name learned
	valid_to   INTEGER            -- unix ms, NULL while current
);
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
CREATE TABLE names (
	id   INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE
);
CREATE TABLE nat_days (
	day      INTEGER PRIMARY KEY,       -- unix seconds of the UTC day's start
	name     TEXT    NOT NULL,          -- nat_YYYYMMDD
	max_span INTEGER NOT NULL DEFAULT 0, -- ms: the longest last_seen - first_seen of its rows
	max_last INTEGER NOT NULL DEFAULT 0, -- unix ms: the latest last_seen of its rows
	rows     INTEGER NOT NULL DEFAULT 0  -- rows inserted
, format INTEGER NOT NULL DEFAULT 1);
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
CREATE TABLE provision_runs (
	id         INTEGER PRIMARY KEY,
	router_id  INTEGER NOT NULL REFERENCES routers(id) ON DELETE CASCADE,
	time       INTEGER NOT NULL, -- unix ms
	action     TEXT    NOT NULL,
	ok         INTEGER NOT NULL,
	summary    TEXT    NOT NULL DEFAULT '',
	changes    TEXT    NOT NULL DEFAULT '[]',
	transcript TEXT    NOT NULL DEFAULT '[]',
	error      TEXT    NOT NULL DEFAULT ''
);
CREATE TABLE rate5 (
	kind INTEGER NOT NULL, src INTEGER NOT NULL, k TEXT NOT NULL, t INTEGER NOT NULL,
	a INTEGER NOT NULL, b INTEGER NOT NULL,
	PRIMARY KEY (kind, src, k, t)
) WITHOUT ROWID;
CREATE TABLE rate5_d (
	kind INTEGER NOT NULL, src INTEGER NOT NULL, k TEXT NOT NULL, d INTEGER NOT NULL,
	x BLOB NOT NULL,
	PRIMARY KEY (kind, src, k, d)
) WITHOUT ROWID;
CREATE TABLE rate5_keys (
	kind INTEGER NOT NULL, src INTEGER NOT NULL, k TEXT NOT NULL,
	first INTEGER NOT NULL, last INTEGER NOT NULL,
	PRIMARY KEY (kind, src, k)
) WITHOUT ROWID;
CREATE TABLE rate_done (
	kind INTEGER NOT NULL, f INTEGER NOT NULL, t INTEGER NOT NULL, pct REAL NOT NULL,
	made INTEGER NOT NULL,
	PRIMARY KEY (kind, f, t, pct)
) WITHOUT ROWID;
CREATE TABLE rate_sum (
	kind INTEGER NOT NULL, f INTEGER NOT NULL, t INTEGER NOT NULL, pct REAL NOT NULL,
	src INTEGER NOT NULL, k TEXT NOT NULL,
	a INTEGER NOT NULL, b INTEGER NOT NULL,
	peak_a INTEGER NOT NULL, peak_a_t INTEGER NOT NULL, peak_b INTEGER NOT NULL, peak_b_t INTEGER NOT NULL,
	pct_a INTEGER NOT NULL, pct_b INTEGER NOT NULL, samples INTEGER NOT NULL,
	apps BLOB NOT NULL, -- a subscriber's 10 largest applications: (uvarint length, key, uvarint bytes)...
	PRIMARY KEY (kind, f, t, pct, src, k)
) WITHOUT ROWID;
CREATE TABLE raw_partitions (
	name   TEXT    PRIMARY KEY,
	start  INTEGER NOT NULL,          -- unix seconds
	format INTEGER NOT NULL,          -- 1: flows_* (read only), 2: raw_*
	closed INTEGER NOT NULL DEFAULT 0 -- format 1: address indexes built; format 2: first tail spilled
, rolled INTEGER);
CREATE TABLE raw_segments (
	part       TEXT    NOT NULL,
	seg        INTEGER NOT NULL,
	first_id   INTEGER NOT NULL,
	last_id    INTEGER NOT NULL,
	buckets    INTEGER NOT NULL,
	block_rows INTEGER NOT NULL,
	blocks     BLOB    NOT NULL,
	PRIMARY KEY (part, seg)
) WITHOUT ROWID;
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
CREATE TABLE rollup_pending (
	hour INTEGER PRIMARY KEY -- unix seconds
);
CREATE TABLE rollup_pending_day (
	day INTEGER PRIMARY KEY -- unix seconds
);
CREATE TABLE routers (
	id              INTEGER PRIMARY KEY,
	name            TEXT    NOT NULL UNIQUE,
	address         TEXT    NOT NULL,
	tls             INTEGER NOT NULL DEFAULT 0,
	tls_fingerprint TEXT    NOT NULL DEFAULT '',
	username        TEXT    NOT NULL DEFAULT '',
	password        BLOB,
	identity        TEXT    NOT NULL DEFAULT '',
	board           TEXT    NOT NULL DEFAULT '',
	model           TEXT    NOT NULL DEFAULT '',
	serial          TEXT    NOT NULL DEFAULT '',
	version         TEXT    NOT NULL DEFAULT '',
	interfaces      TEXT    NOT NULL DEFAULT '[]',
	addresses       TEXT    NOT NULL DEFAULT '[]',
	state           TEXT    NOT NULL DEFAULT 'new',
	state_detail    TEXT    NOT NULL DEFAULT '',
	previous        TEXT    NOT NULL DEFAULT '{}',
	target_id       TEXT    NOT NULL DEFAULT '',
	target_created  INTEGER NOT NULL DEFAULT 0,
	created_at      INTEGER NOT NULL, -- unix ms
	updated_at      INTEGER NOT NULL, -- unix ms
	last_contact    INTEGER NOT NULL DEFAULT 0 -- unix ms, 0 = never
, exporter_addr TEXT NOT NULL DEFAULT '');
CREATE TABLE subapp_d (
	t INTEGER NOT NULL, src INTEGER NOT NULL, sub TEXT NOT NULL, app BLOB NOT NULL,
	down_bytes INTEGER NOT NULL, up_bytes INTEGER NOT NULL, flows INTEGER NOT NULL,
	PRIMARY KEY (t, src, sub, app)
) WITHOUT ROWID;
CREATE TABLE subapp_day (
	t INTEGER NOT NULL, src INTEGER NOT NULL, sub TEXT NOT NULL, x BLOB NOT NULL,
	PRIMARY KEY (t, src, sub)
) WITHOUT ROWID;
CREATE TABLE subdom_d (
	src INTEGER NOT NULL, sub TEXT NOT NULL, t INTEGER NOT NULL, dom TEXT NOT NULL,
	down_bytes INTEGER NOT NULL, up_bytes INTEGER NOT NULL, flows INTEGER NOT NULL,
	PRIMARY KEY (src, sub, t, dom)
) WITHOUT ROWID;
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
CREATE TABLE top_d (
	dim INTEGER NOT NULL, t INTEGER NOT NULL, src INTEGER NOT NULL, dir INTEGER NOT NULL, k BLOB NOT NULL,
	bytes INTEGER NOT NULL, packets INTEGER NOT NULL, flows INTEGER NOT NULL,
	PRIMARY KEY (dim, t, src, dir, k)
) WITHOUT ROWID;
CREATE TABLE top_h (
	dim INTEGER NOT NULL, t INTEGER NOT NULL, src INTEGER NOT NULL, dir INTEGER NOT NULL, k BLOB NOT NULL,
	bytes INTEGER NOT NULL, packets INTEGER NOT NULL, flows INTEGER NOT NULL,
	PRIMARY KEY (dim, t, src, dir, k)
) WITHOUT ROWID;
CREATE TABLE top_m (
	dim INTEGER NOT NULL, t INTEGER NOT NULL, src INTEGER NOT NULL, dir INTEGER NOT NULL, k BLOB NOT NULL,
	bytes INTEGER NOT NULL, packets INTEGER NOT NULL, flows INTEGER NOT NULL,
	PRIMARY KEY (dim, t, src, dir, k)
) WITHOUT ROWID;
CREATE TABLE tot_h (
	t INTEGER NOT NULL, src INTEGER NOT NULL, dir INTEGER NOT NULL,
	bytes INTEGER NOT NULL, packets INTEGER NOT NULL, flows INTEGER NOT NULL,
	PRIMARY KEY (t, src, dir)
) WITHOUT ROWID;
CREATE TABLE tot_m (
	t INTEGER NOT NULL, src INTEGER NOT NULL, dir INTEGER NOT NULL,
	bytes INTEGER NOT NULL, packets INTEGER NOT NULL, flows INTEGER NOT NULL,
	PRIMARY KEY (t, src, dir)
) WITHOUT ROWID;
CREATE TABLE usage_d (
	t INTEGER NOT NULL, src INTEGER NOT NULL, sub TEXT NOT NULL,
	down_bytes INTEGER NOT NULL, up_bytes INTEGER NOT NULL,
	down_packets INTEGER NOT NULL, up_packets INTEGER NOT NULL, flows INTEGER NOT NULL,
	PRIMARY KEY (t, src, sub)
) WITHOUT ROWID;
CREATE TABLE usage_h (
	t INTEGER NOT NULL, src INTEGER NOT NULL, sub TEXT NOT NULL,
	down_bytes INTEGER NOT NULL, up_bytes INTEGER NOT NULL,
	down_packets INTEGER NOT NULL, up_packets INTEGER NOT NULL, flows INTEGER NOT NULL,
	PRIMARY KEY (t, src, sub)
) WITHOUT ROWID;
CREATE TABLE users (
	id            INTEGER PRIMARY KEY,
	name          TEXT    NOT NULL UNIQUE,
	password_hash TEXT    NOT NULL,
	created_at    INTEGER NOT NULL, -- unix ms
	updated_at    INTEGER NOT NULL  -- unix ms
, role TEXT NOT NULL DEFAULT 'viewer' CHECK (role IN ('admin', 'operator', 'viewer')));
