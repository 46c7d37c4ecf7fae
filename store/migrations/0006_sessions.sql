-- 0006: console sessions, so that a restart or an upgrade does not log
-- everybody out. Only the hex SHA-256 of the session id (the cookie) is
-- kept: a copy of the database does not give a live login.
CREATE TABLE console_sessions (
	hash       TEXT    PRIMARY KEY, -- hex SHA-256 of the cookie value
	user_name  TEXT    NOT NULL,
	created_at INTEGER NOT NULL,    -- unix ms
	expires_at INTEGER NOT NULL     -- unix ms
);
CREATE INDEX console_sessions_expires ON console_sessions(expires_at);
CREATE INDEX console_sessions_user ON console_sessions(user_name);
