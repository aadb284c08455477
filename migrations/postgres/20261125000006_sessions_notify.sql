-- Every changed or deleted session row is announced to the other instances sharing this
-- database, which drop it from their in-memory session cache (src/server/session/cache.rs).
-- A trigger rather than the application: a DELETE typed by an operator is announced too.
-- The payload is "<session id> <instance>": each scanlogin connection sets
-- scanlogin.instance, so an instance can tell its own writes (already in its cache) from
-- others'; anything else (psql) sends an empty instance.
CREATE FUNCTION scanlogin_session_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('scanlogin_sessions', OLD.id || ' ' || coalesce(current_setting('scanlogin.instance', true), ''));
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER sessions_changed AFTER UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION scanlogin_session_changed();
