-- 0017: roles, token owners and expiry, and the audit log of changes.
--
-- Every user has a role: admin (everything), operator (routers, alerts,
-- reports) or viewer (read only). The users that exist already were full
-- admins and stay admin; a row written without a role is a viewer.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'viewer' CHECK (role IN ('admin', 'operator', 'viewer'));
UPDATE users SET role = 'admin';

-- Every API token belongs to a user and dies with it (ON DELETE CASCADE);
-- its role is at most its owner's (checked when it is used) and it may
-- expire (expires_at, unix ms, 0 = never). The tokens that exist already
-- were full admin tokens: they go to the oldest user, as admin tokens. A
-- token made before any user existed has no owner and is refused.
ALTER TABLE api_tokens ADD COLUMN user_id INTEGER REFERENCES users(id) ON DELETE CASCADE;
ALTER TABLE api_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'viewer' CHECK (role IN ('admin', 'operator', 'viewer'));
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
UPDATE api_tokens SET role = 'admin', user_id = (SELECT id FROM users ORDER BY id LIMIT 1);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

-- The audit log: who (a user, or token:<name> of a user) did what
-- (action and target, never a secret), when and from which address, and
-- whether it succeeded. Bounded by age and by rows (store.AuditRetention).
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
CREATE INDEX audit_log_at ON audit_log(at);
