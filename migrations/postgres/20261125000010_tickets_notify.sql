-- Every changed ticket is announced to the other instances sharing this database, whose
-- long-polls on it wake (src/server/changes.rs). A trigger rather than a pg_notify
-- statement after each UPDATE: one round trip less per change, and a change typed in psql
-- is announced too. The payload is "<ticket id> <instance>", as for sessions: the
-- instance that wrote the change has told its own long-polls already.
CREATE FUNCTION scanlogin_ticket_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('scanlogin_tickets', NEW.id || ' ' || coalesce(current_setting('scanlogin.instance', true), ''));
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER tickets_changed AFTER UPDATE ON tickets
    FOR EACH ROW EXECUTE FUNCTION scanlogin_ticket_changed();
