//! An OpenID Connect provider whose login is the scan page: any site that speaks OIDC
//! (Grafana, Gitea, Nextcloud, …) gets WeChat scan login.
//!
//! Authorization code flow with PKCE (S256; `plain` refused; required for public
//! clients), `state` and `nonce` round-tripped, exact `redirect_uri` match, `/token` with
//! client_secret_basic / client_secret_post / PKCE alone, `/userinfo`, RP-initiated
//! logout. Built on the `openidconnect` crate's types (metadata, JWKS, ID token and its
//! RS256 signing). Paths live under `/oidc`; discovery names them.
//!
//! Where it does not know the client or the `redirect_uri`, it answers with an error
//! page of its own and never redirects; every other error goes back to the client as
//! RFC 6749 error parameters (with `iss`, RFC 9207).
//!
//! In the ticket core's shape: [`routes`] are thin handlers over typed requests
//! ([`request`]), a store that owns the SQL ([`store`]), the claims built once from the
//! granted scopes ([`claims`]), discovery ([`discovery`]) and one error type
//! ([`error::OidcError`]) that renders each of the protocol's ways of saying no.

pub mod claims;
pub mod clients;
pub mod discovery;
pub mod error;
pub mod keys;
pub mod request;
pub mod routes;
pub mod store;

use crate::domain::UnixMillis;
use crate::server::handoff::Handoff;
use crate::server::state::AppState;
use axum::routing::get;
use clients::Clients;
use keys::SigningKeys;
use std::time::Duration;
use store::OidcStore;

/// How long a code may wait for its exchange.
const CODE_LIFE: Duration = Duration::from_secs(60);
/// How long an access token (and the ID token) lives.
const TOKEN_LIFE: Duration = Duration::from_secs(3600);
/// How long a pending authorization request waits for the scan.
const REQUEST_LIFE: Duration = Duration::from_secs(600);

/// The provider: its clients, its keys, its tables, its address.
pub struct Provider {
    pub clients: Clients,
    pub keys: SigningKeys,
    pub store: OidcStore,
    /// `PUBLIC_URL`, the issuer.
    pub issuer: String,
    /// A new signing key after this long.
    pub rotate: Duration,
    /// The oldest `id_token_hint` logout accepts (a login's longest life,
    /// `SESSION_ABSOLUTE_SECS`: an older hint cannot name a live login); also how long a
    /// retired key's public part stays.
    pub hint_max_age: Duration,
    /// The key of the pairwise subjects (`claims::subject`), the same on every instance.
    pub pairwise_key: Vec<u8>,
}

impl Provider {
    /// The server secret `name` (256 bits, base64url), made on first start and read by
    /// every instance after (the first insert wins).
    pub async fn server_secret(db: &crate::server::db::Db, name: &str) -> Result<Vec<u8>, sqlx::Error> {
        use base64::Engine as _;
        let fresh = crate::server::tokens::random_token(32);
        sqlx::query("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(&fresh)
            .execute(db)
            .await?;
        let (value,): (String,) = sqlx::query_as("SELECT value FROM server_secrets WHERE name = $1").bind(name).fetch_one(db).await?;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(value).map_err(|e| sqlx::Error::Decode(Box::new(e)))
    }

    /// The name of the client the login `handoff` signs in to (for the login page and
    /// the phone): only an exact `/oidc/resume/<id>` of a pending request names one.
    pub async fn client_name(&self, handoff: &Handoff) -> Option<String> {
        let id = handoff.oidc_request()?;
        let client_id = self.store.request_client(id).await.ok()??;
        self.clients.get(&client_id).map(|c| c.name.clone())
    }

    /// Forgets finished codes, expired tokens and abandoned requests. Codes stay a while
    /// after use so that a replay is recognised (and revokes).
    pub async fn purge(&self, now: UnixMillis) -> Result<(), sqlx::Error> {
        self.store.purge(now, TOKEN_LIFE).await
    }
}

/// The provider's routes.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/.well-known/openid-configuration", get(routes::discovery))
        .route("/oidc/jwks", get(routes::jwks))
        .route("/oidc/authorize", get(routes::authorize))
        .route("/oidc/resume/{id}", get(routes::resume))
        .route("/oidc/consent/{id}", get(routes::consent_page).post(routes::consent_answer))
        .route("/oidc/token", axum::routing::post(routes::token))
        .route("/oidc/revoke", axum::routing::post(routes::revoke))
        .route("/oidc/userinfo", get(routes::userinfo).post(routes::userinfo))
        .route("/oidc/logout", get(routes::end_session_get).post(routes::end_session_post))
}
