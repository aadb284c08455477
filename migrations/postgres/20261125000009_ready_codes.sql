-- The fleet's pool of codes made ahead of demand (src/server/codes.rs): a ticket id and
-- its image, not yet anyone's. A browser takes one with DELETE … RETURNING.
CREATE TABLE ready_codes (
    ticket_id TEXT PRIMARY KEY,
    image BYTEA NOT NULL,
    made_at BIGINT NOT NULL
);
CREATE INDEX ready_codes_made_at ON ready_codes (made_at);
