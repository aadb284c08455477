-- With COOKIE_DOMAIN, forward-auth has a session of its own, linked to the browser's
-- scanlogin session (`parent`, its stored key): its cookie goes to every app under the
-- domain, and it is worth nothing at scanlogin itself. It ends with its parent.
ALTER TABLE sessions ADD COLUMN parent TEXT;
CREATE INDEX sessions_parent ON sessions (parent);
