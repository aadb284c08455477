-- Secrets the server makes for itself on first start and every instance shares: the key
-- of the OpenID Connect pairwise subjects (`oidc_pairwise`).
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
