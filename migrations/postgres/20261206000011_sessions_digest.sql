-- Sessions are stored under the SHA-256 (hex) of their id, not the id: the id is the
-- cookie's value, and the change trigger announces a row's key on a channel that any role
-- able to connect may LISTEN to. Existing rows move to their digest with the trigger off,
-- so that no id is announced while they move. (The trigger itself is unchanged: OLD.id is
-- now a digest.)
ALTER TABLE sessions DISABLE TRIGGER sessions_changed;
UPDATE sessions SET id = encode(sha256(convert_to(id, 'UTF8')), 'hex') WHERE length(id) <> 64;
ALTER TABLE sessions ENABLE TRIGGER sessions_changed;
