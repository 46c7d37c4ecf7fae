-- 0003: console users and API tokens (web console). Passwords are bcrypt
-- hashes; tokens are kept as the hex SHA-256 of their secret only.
CREATE TABLE users (
	id            INTEGER PRIMARY KEY,
	name          TEXT    NOT NULL UNIQUE,
	password_hash TEXT    NOT NULL,
	created_at    INTEGER NOT NULL, -- unix ms
	updated_at    INTEGER NOT NULL  -- unix ms
);

CREATE TABLE api_tokens (
	id         INTEGER PRIMARY KEY,
	name       TEXT    NOT NULL UNIQUE,
	hash       TEXT    NOT NULL UNIQUE, -- hex SHA-256 of the secret
	prefix     TEXT    NOT NULL,        -- first characters, for display
	created_at INTEGER NOT NULL,        -- unix ms
	last_used  INTEGER NOT NULL DEFAULT 0 -- unix ms, 0 = never
);
