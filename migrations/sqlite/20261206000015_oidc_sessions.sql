-- Access tokens belong to the browser session that authorized them: a logout, 退出其他设备
-- or a disable ends them with it. `session_key` is the session's stored key (a digest).
ALTER TABLE oidc_codes ADD COLUMN session_key TEXT;
ALTER TABLE oidc_tokens ADD COLUMN session_key TEXT;
CREATE INDEX oidc_tokens_session ON oidc_tokens (session_key);
