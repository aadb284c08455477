-- Profiles: the nickname a person chose (profile_at: when) and their avatar, re-encoded
-- small on the server and kept here, so every instance serves it.
ALTER TABLE users ADD COLUMN profile_at BIGINT;
ALTER TABLE users ADD COLUMN avatar_id TEXT;

CREATE TABLE avatars (
    id TEXT PRIMARY KEY,
    png BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
