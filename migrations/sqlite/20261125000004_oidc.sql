-- OpenID Connect provider: signing keys shared by every instance, pending authorization
-- requests (while the person scans), one-time codes, and access tokens (hashes only).
CREATE TABLE oidc_keys (
    kid TEXT PRIMARY KEY,
    private_pem TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE oidc_requests (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    params TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE oidc_codes (
    code_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT,
    nonce TEXT,
    user_id BIGINT NOT NULL,
    auth_time BIGINT NOT NULL,
    scope TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE TABLE oidc_tokens (
    token_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    scope TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX oidc_tokens_code ON oidc_tokens (code_hash);

-- The relying party a ticket signs in to, shown on the login page and the phone.
ALTER TABLE tickets ADD COLUMN client_name TEXT;
