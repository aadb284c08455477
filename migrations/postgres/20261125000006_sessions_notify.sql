-- Every changed or deleted session row is announced to the other instances sharing this
-- database, which drop it from their in-memory session cache (src/server/session/cache.rs).
-- A trigger rather than the application: a DELETE typed by an operator is announced too.
CREATE FUNCTION scanlogin_session_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('scanlogin_sessions', OLD.id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER sessions_changed AFTER UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION scanlogin_session_changed();
