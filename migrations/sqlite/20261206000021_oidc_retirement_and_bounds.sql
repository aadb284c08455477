-- A signing key that no longer signs keeps only its public part (security review #12):
-- `private_pem` is emptied and the public JWK kept here while tokens or logout hints it
-- signed may still be presented; then the row goes. `private_pem` may also hold the key
-- sealed with OIDC_KEY_FILE (`enc:v1:…`).
ALTER TABLE oidc_keys ADD COLUMN public_jwk TEXT;

-- Pending authorization requests are bounded per browser (security review #2): the
-- binding key of the browser that made each, when it had one.
ALTER TABLE oidc_requests ADD COLUMN browser_key TEXT;
CREATE INDEX oidc_requests_browser ON oidc_requests (browser_key);
