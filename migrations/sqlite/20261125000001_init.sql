CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    openid TEXT NOT NULL UNIQUE,
    unionid TEXT UNIQUE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE logins (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users (id),
    at BIGINT NOT NULL,
    ip TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    ticket_id TEXT NOT NULL UNIQUE
);
CREATE INDEX logins_user_at ON logins (user_id, at);

CREATE TABLE tickets (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    version BIGINT NOT NULL,
    browser_key TEXT NOT NULL,
    next TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    scanner_id BIGINT REFERENCES users (id),
    confirm_hash TEXT,
    origin_ip TEXT NOT NULL,
    origin_ua TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX tickets_expires ON tickets (expires_at);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    user_id BIGINT
);
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX sessions_user ON sessions (user_id);
