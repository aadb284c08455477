-- An email for the apps that insist on one (issue 28): only a verified address is kept on
-- the user, and one address belongs to one person (apps match accounts by email).
ALTER TABLE users ADD COLUMN email TEXT;
CREATE UNIQUE INDEX users_email ON users (email) WHERE email IS NOT NULL;

-- A verification link sent and not yet opened: only the token's SHA-256 is stored.
CREATE TABLE email_verifications (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    email TEXT NOT NULL,
    next TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX email_verifications_user ON email_verifications (user_id);
