-- The sites a person allowed to sign them in without asking again (security review #5):
-- recorded when they confirm a login that names the site, or allow it on the consent
-- page; revocable on the account page.
CREATE TABLE oidc_consents (
    user_id BIGINT NOT NULL,
    client_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
