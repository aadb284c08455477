-- Rate limits shared by every instance (src/server/limits.rs): per limit and key (as a
-- SHA-256, no addresses or browser keys), the GCRA's theoretical arrival time in ms.
CREATE TABLE rate_limits (
    key TEXT PRIMARY KEY,
    tat BIGINT NOT NULL
);
