-- The mini program's own login (the seed's 自定义登录态): after one wx.login the phone
-- holds an opaque token; only its SHA-256 is stored. It lists and signs out the person's
-- browsers (「我的网页登录」). Ends when it expires, is renewed, or the user is disabled.
CREATE TABLE phone_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX phone_sessions_user ON phone_sessions (user_id);
