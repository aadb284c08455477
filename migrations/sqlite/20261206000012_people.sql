-- People: each user's status (active / pending / disabled), whether they administer
-- scanlogin, and their groups (comma-separated names, [a-z0-9_-]{1,32} each). Existing
-- users stay active.
ALTER TABLE users ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
ALTER TABLE users ADD COLUMN admin BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN group_names TEXT NOT NULL DEFAULT '';

-- One-time links that make whoever signs in through them an administrator (the first
-- admin; `scanlogin admin setup-link`). Only a hash of the secret is kept.
CREATE TABLE setup_links (
    token_hash TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    used_by BIGINT
);
