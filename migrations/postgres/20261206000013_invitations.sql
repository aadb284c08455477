-- Invitations: a link (only its hash kept) that lets newcomers in whatever SIGNUP says,
-- active at once, with the groups it carries; counted use by use, per person.
CREATE TABLE invitations (
    id BIGSERIAL PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    group_names TEXT NOT NULL,
    max_uses BIGINT NOT NULL,
    uses BIGINT NOT NULL DEFAULT 0,
    created_by BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE invitation_uses (
    invitation_id BIGINT NOT NULL REFERENCES invitations (id),
    user_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (invitation_id, user_id)
);
