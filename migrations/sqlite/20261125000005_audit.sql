-- The audit trail: who signed in as whom, from where, and who ended or refused what.
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    user_id BIGINT,
    ip TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_user_at ON audit_events (user_id, at);
CREATE INDEX audit_at ON audit_events (at);
