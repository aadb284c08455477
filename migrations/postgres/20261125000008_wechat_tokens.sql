-- The WeChat access token shared by every instance in real mode (src/server/wechat/fleet.rs).
CREATE TABLE wechat_tokens (
    appid TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    fetched_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
