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
//! RFC 6749 error parameters.

// Helpers return the finished HTTP answer as their `Err`.
#![allow(clippy::result_large_err)]

pub mod clients;
pub mod keys;

use crate::domain::UnixMillis;
use crate::server::session::WebSession;
use crate::server::state::AppState;
use crate::server::tokens::{TokenHash, random_token};
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clients::{Client, Clients};
use keys::SigningKeys;
use openidconnect::core::{
    CoreClaimName, CoreClientAuthMethod, CoreGrantType, CoreIdToken, CoreIdTokenClaims, CoreIdTokenFields, CoreIdTokenVerifier,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm, CoreResponseMode,
    CoreResponseType, CoreSubjectIdentifierType, CoreTokenResponse, CoreTokenType, CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AdditionalProviderMetadata, Audience, AuthUrl, AuthenticationMethodReference, AuthorizationCode, EmptyAdditionalClaims,
    EmptyExtraTokenFields, EndSessionUrl, EndUserName, IssuerUrl, JsonWebKeySetUrl, LocalizedClaim, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, ProviderMetadata, ResponseTypes, Scope, StandardClaims, SubjectIdentifier, TokenUrl, UserInfoUrl,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How long a code may wait for its exchange.
const CODE_LIFE_MS: i64 = 60_000;
/// How long an access token (and the ID token) lives.
const TOKEN_LIFE_SECS: i64 = 3600;
/// How long a pending authorization request waits for the scan.
const REQUEST_LIFE_MS: i64 = 600_000;

/// The provider: its clients, its keys, its addresses.
pub struct Provider {
    pub clients: Clients,
    pub keys: SigningKeys,
    /// `PUBLIC_URL`, the issuer.
    pub issuer: String,
    /// A new signing key after this long.
    pub rotate_ms: i64,
}

/// Discovery's extra fields: RP-initiated logout and PKCE methods.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraMetadata {
    end_session_endpoint: EndSessionUrl,
    code_challenge_methods_supported: Vec<String>,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

type Metadata = ProviderMetadata<
    ExtraMetadata,
    openidconnect::core::CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    openidconnect::core::CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The provider's routes.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oidc/jwks", get(jwks))
        .route("/oidc/authorize", get(authorize))
        .route("/oidc/resume/{id}", get(resume))
        .route("/oidc/token", axum::routing::post(token))
        .route("/oidc/userinfo", get(userinfo).post(userinfo))
        .route("/oidc/logout", get(end_session))
}

fn provider(st: &AppState) -> Result<&Arc<Provider>, Response> {
    st.oidc.as_ref().ok_or_else(|| StatusCode::NOT_FOUND.into_response())
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "oidc: internal error");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

async fn discovery(State(st): State<AppState>) -> Response {
    let p = match provider(&st) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match metadata(&p.issuer) {
        Ok(m) => axum::Json(m).into_response(),
        Err(e) => internal(e),
    }
}

fn metadata(issuer: &str) -> Result<Metadata, url::ParseError> {
    let at = |path: &str| format!("{issuer}{path}");
    let extra = ExtraMetadata {
        end_session_endpoint: EndSessionUrl::new(at("/oidc/logout"))?,
        code_challenge_methods_supported: vec!["S256".into()],
    };
    Ok(Metadata::new(
        IssuerUrl::new(issuer.to_string())?,
        AuthUrl::new(at("/oidc/authorize"))?,
        JsonWebKeySetUrl::new(at("/oidc/jwks"))?,
        vec![ResponseTypes::new(vec![CoreResponseType::Code])],
        vec![CoreSubjectIdentifierType::Public],
        vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
        extra,
    )
    .set_token_endpoint(Some(TokenUrl::new(at("/oidc/token"))?))
    .set_userinfo_endpoint(Some(UserInfoUrl::new(at("/oidc/userinfo"))?))
    .set_scopes_supported(Some(vec![Scope::new("openid".into()), Scope::new("profile".into())]))
    .set_grant_types_supported(Some(vec![CoreGrantType::AuthorizationCode]))
    .set_token_endpoint_auth_methods_supported(Some(vec![
        CoreClientAuthMethod::ClientSecretBasic,
        CoreClientAuthMethod::ClientSecretPost,
        CoreClientAuthMethod::None,
    ]))
    .set_claims_supported(Some(
        ["sub", "name", "auth_time", "nonce", "amr", "iss", "aud", "exp", "iat"]
            .iter()
            .map(|c| CoreClaimName::new(c.to_string()))
            .collect(),
    )))
}

async fn jwks(State(st): State<AppState>) -> Response {
    let p = match provider(&st) {
        Ok(p) => p,
        Err(r) => return r,
    };
    // A replaced key stays published until every token it signed has expired.
    match p.keys.jwks(st.clock.now(), TOKEN_LIFE_SECS * 1000 + 300_000).await {
        Ok(set) => axum::Json(set).into_response(),
        Err(e) => internal(e),
    }
}

/// An authorization request, checked: client and redirect URI known.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    prompt: Option<String>,
}

/// An error page of ours: for an unknown client or redirect URI, never a redirect.
fn error_page(status: StatusCode, what: &str) -> Response {
    use crate::server::http::{esc, message_page};
    message_page(status, "zh-CN", "登录请求无效 · Invalid sign-in request", &format!("<p>{}</p>", esc(what)))
}

/// Back to the client with RFC 6749 error parameters.
fn redirect_error(req: &AuthRequest, error: &str, description: &str) -> Response {
    let mut params = vec![("error", error.to_string()), ("error_description", description.to_string())];
    if let Some(s) = &req.state {
        params.push(("state", s.clone()));
    }
    redirect_with(&req.redirect_uri, &params)
}

fn redirect_with(uri: &str, params: &[(&str, String)]) -> Response {
    let Ok(mut url) = url::Url::parse(uri) else { return error_page(StatusCode::BAD_REQUEST, "redirect_uri") };
    url.query_pairs_mut().extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
    crate::server::http::found(url.as_str())
}

/// `GET /oidc/authorize`.
async fn authorize(
    State(st): State<AppState>,
    caller: crate::server::caller::Caller,
    session: tower_sessions::Session,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = match provider(&st) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    let param = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let Some(client) = param("client_id").and_then(|id| p.clients.get(&id)) else {
        return error_page(StatusCode::BAD_REQUEST, "未知的应用（client_id）。Unknown client.");
    };
    let Some(redirect_uri) = param("redirect_uri").filter(|r| client.redirect_uris.iter().any(|u| u == r)) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "回调地址（redirect_uri）不在此应用的登记列表中。The redirect_uri is not registered for this client.",
        );
    };
    let req = AuthRequest {
        client_id: client.id.clone(),
        redirect_uri,
        scope: param("scope").unwrap_or_default(),
        state: param("state"),
        nonce: param("nonce"),
        code_challenge: param("code_challenge"),
        prompt: param("prompt"),
    };
    if param("response_type").as_deref() != Some("code") {
        return redirect_error(&req, "unsupported_response_type", "only response_type=code");
    }
    if !req.scope.split(' ').any(|s| s == "openid") {
        return redirect_error(&req, "invalid_scope", "scope must include openid");
    }
    match (param("code_challenge_method").as_deref(), &req.code_challenge) {
        (Some("S256"), Some(c)) if (43..=128).contains(&c.len()) => {}
        (None, None) if !client.is_public() => {}
        (None, None) => return redirect_error(&req, "invalid_request", "a public client must use PKCE (S256)"),
        (Some("plain") | None, Some(_)) => return redirect_error(&req, "invalid_request", "code_challenge_method must be S256"),
        _ => return redirect_error(&req, "invalid_request", "bad code_challenge"),
    }
    let max_age = match param("max_age").map(|m| m.parse::<i64>()) {
        None => None,
        Some(Ok(m)) if m >= 0 => Some(m),
        Some(_) => return redirect_error(&req, "invalid_request", "bad max_age"),
    };
    let now = st.clock.now();
    // prompt=login asks for a new scan whatever the session: only a login from now on
    // counts; max_age, only one within that many seconds of this request.
    let mut not_before = UnixMillis(0);
    if req.prompt.as_deref().is_some_and(|p| p.split(' ').any(|x| x == "login")) {
        not_before = now;
    }
    if let Some(m) = max_age {
        not_before = not_before.max(now.plus_ms(-m.saturating_mul(1000)));
    }
    let web = WebSession::new(session, st.site.session_life);
    match answer_if_signed_in(&st, &p, &web, &req, not_before, now, Some(&caller)).await {
        Ok(Some(res)) => return res,
        Ok(None) => {}
        Err(res) => return res,
    }
    if req.prompt.as_deref().is_some_and(|p| p.split(' ').any(|x| x == "none")) {
        return redirect_error(&req, "login_required", "no signed-in session");
    }
    // Not signed in (or not recently enough): keep the request while the person scans.
    let id = random_token(16);
    let params = match serde_json::to_string(&req) {
        Ok(p) => p,
        Err(e) => return internal(e),
    };
    let stored = sqlx::query("INSERT INTO oidc_requests (id, client_id, params, not_before, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&id)
        .bind(&req.client_id)
        .bind(params)
        .bind(not_before)
        .bind(now.plus_ms(REQUEST_LIFE_MS))
        .execute(&st.db)
        .await;
    if let Err(e) = stored {
        return internal(e);
    }
    let fresh = if not_before.0 > 0 { "&fresh=1" } else { "" };
    crate::server::http::found(&format!("/login?next=/oidc/resume/{id}{fresh}"))
}

/// After the scan: the stored request answered for the now signed-in browser.
async fn resume(
    State(st): State<AppState>,
    caller: crate::server::caller::Caller,
    session: tower_sessions::Session,
    Path(id): Path<String>,
) -> Response {
    let p = match provider(&st) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    let now = st.clock.now();
    let row: Result<Option<(String, i64, i64)>, _> =
        sqlx::query_as("SELECT params, not_before, expires_at FROM oidc_requests WHERE id = $1").bind(&id).fetch_optional(&st.db).await;
    let (params, not_before, expires_at) = match row {
        Ok(Some(r)) => r,
        Ok(None) => {
            return error_page(
                StatusCode::NOT_FOUND,
                "登录请求不存在或已过期，请回到应用重新登录。The sign-in request is unknown or expired.",
            );
        }
        Err(e) => return internal(e),
    };
    if now >= UnixMillis(expires_at) {
        return error_page(StatusCode::GONE, "登录请求已过期，请回到应用重新登录。The sign-in request expired.");
    }
    let req: AuthRequest = match serde_json::from_str(&params) {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let web = WebSession::new(session, st.site.session_life);
    match answer_if_signed_in(&st, &p, &web, &req, UnixMillis(not_before), now, Some(&caller)).await {
        Ok(Some(res)) => {
            let _ = sqlx::query("DELETE FROM oidc_requests WHERE id = $1").bind(&id).execute(&st.db).await;
            res
        }
        Ok(None) => {
            let fresh = if not_before > 0 { "&fresh=1" } else { "" };
            crate::server::http::found(&format!("/login?next=/oidc/resume/{id}{fresh}"))
        }
        Err(res) => res,
    }
}

/// With a signed-in session that logged in at `not_before` or later (`prompt=login`,
/// `max_age`): a code for the
/// client, sent to its redirect URI. `None`: a (new) login is needed first.
async fn answer_if_signed_in(
    st: &AppState,
    p: &Provider,
    web: &WebSession,
    req: &AuthRequest,
    not_before: UnixMillis,
    now: UnixMillis,
    caller: Option<&crate::server::caller::Caller>,
) -> Result<Option<Response>, Response> {
    let signed_in = web.signed_in(now, st.site.session_absolute_ms).await.map_err(|_| internal("session"))?;
    let Some(who) = signed_in else { return Ok(None) };
    if who.login_at < not_before {
        return Ok(None);
    }
    let Some(client) = p.clients.get(&req.client_id) else { return Err(error_page(StatusCode::BAD_REQUEST, "unknown client")) };
    let code = random_token(32);
    let stored = sqlx::query(
        "INSERT INTO oidc_codes (code_hash, client_id, redirect_uri, code_challenge, nonce, user_id, auth_time, scope, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(TokenHash::of(&code).as_str())
    .bind(&client.id)
    .bind(&req.redirect_uri)
    .bind(req.code_challenge.clone())
    .bind(req.nonce.clone())
    .bind(who.user)
    .bind(who.login_at)
    .bind(&req.scope)
    .bind(now.plus_ms(CODE_LIFE_MS))
    .execute(&st.db)
    .await;
    stored.map_err(internal)?;
    tracing::info!(client = client.id, user = who.user, "oidc: code issued");
    if let Some(caller) = caller {
        st.audit.record(now, crate::server::audit::Kind::OidcCode, Some(who.user), caller, &client.name).await;
    }
    let mut params = vec![("code", code)];
    if let Some(s) = &req.state {
        params.push(("state", s.clone()));
    }
    Ok(Some(redirect_with(&req.redirect_uri, &params)))
}

/// The credentials of an `Authorization` header using `scheme` (case-insensitive, as
/// RFC 7235 says: clients send `Bearer` and `bearer` alike).
fn credentials<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = header.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// An RFC 6749 error answer of `/token`.
fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut res = (status, axum::Json(serde_json::json!({ "error": error, "error_description": description }))).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"scanlogin\""));
    }
    res
}

/// The client a `/token` request authenticates as: HTTP Basic, or `client_id` (+
/// `client_secret`) in the body. A public client has no secret to show.
fn authenticate<'a>(p: &'a Provider, headers: &HeaderMap, form: &HashMap<String, String>) -> Result<&'a Client, Response> {
    let unauthorized = || token_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed");
    let basic = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| credentials(v, "basic")).and_then(|b| {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD.decode(b.trim()).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (id, secret) = text.split_once(':')?;
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8().map(|c| c.into_owned()).ok();
        Some((decode(id)?, decode(secret)?))
    });
    let (id, secret) = match basic {
        Some((id, secret)) => (id, Some(secret)),
        None => (form.get("client_id").cloned().unwrap_or_default(), form.get("client_secret").cloned()),
    };
    let client = p.clients.get(&id).ok_or_else(unauthorized)?;
    match (client.is_public(), secret) {
        (true, None) => Ok(client),
        (false, Some(s)) if client.secret_matches(&s) => Ok(client),
        _ => Err(unauthorized()),
    }
}

#[derive(sqlx::FromRow)]
struct CodeRow {
    client_id: String,
    redirect_uri: String,
    code_challenge: Option<String>,
    nonce: Option<String>,
    user_id: i64,
    auth_time: i64,
    scope: String,
    expires_at: i64,
    used_at: Option<i64>,
}

/// `POST /oidc/token` (form): the code exchange.
async fn token(State(st): State<AppState>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = match provider(&st) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    let client = match authenticate(&p, &headers, &form) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return token_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "only authorization_code");
    }
    let Some(code) = form.get("code").filter(|c| !c.is_empty()) else {
        return token_error(StatusCode::BAD_REQUEST, "invalid_request", "code missing");
    };
    let code_hash = TokenHash::of(code);
    let now = st.clock.now();
    let invalid_grant = |why: &str| token_error(StatusCode::BAD_REQUEST, "invalid_grant", why);
    let row: Option<CodeRow> = match sqlx::query_as(
        "SELECT client_id, redirect_uri, code_challenge, nonce, user_id, auth_time, scope, expires_at, used_at FROM oidc_codes WHERE code_hash = $1",
    )
    .bind(code_hash.as_str())
    .fetch_optional(&st.db)
    .await
    {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let Some(row) = row else { return invalid_grant("unknown code") };
    if row.used_at.is_some() {
        // A replayed code: whatever its first exchange issued is revoked.
        let revoked = sqlx::query("DELETE FROM oidc_tokens WHERE code_hash = $1").bind(code_hash.as_str()).execute(&st.db).await;
        tracing::warn!(client = client.id, revoked = revoked.map(|r| r.rows_affected()).unwrap_or(0), "oidc: code replayed");
        return invalid_grant("code already used");
    }
    if row.client_id != client.id {
        return invalid_grant("code issued to another client");
    }
    if now >= UnixMillis(row.expires_at) {
        return invalid_grant("code expired");
    }
    if form.get("redirect_uri") != Some(&row.redirect_uri) {
        return invalid_grant("redirect_uri does not match the authorization request");
    }
    match (&row.code_challenge, form.get("code_verifier")) {
        (Some(challenge), Some(verifier)) => {
            let computed = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(verifier.clone()));
            if !crate::server::tokens::constant_time_eq(computed.as_str(), challenge) {
                return invalid_grant("PKCE verification failed");
            }
        }
        (Some(_), None) => return invalid_grant("code_verifier missing"),
        (None, Some(_)) => return invalid_grant("no PKCE challenge was sent"),
        (None, None) if client.is_public() => return invalid_grant("a public client must use PKCE"),
        (None, None) => {}
    }
    // Single use, even under a race: only one exchange marks it.
    let marked = sqlx::query("UPDATE oidc_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL")
        .bind(code_hash.as_str())
        .bind(now)
        .execute(&st.db)
        .await;
    match marked {
        Ok(r) if r.rows_affected() == 1 => {}
        Ok(_) => return invalid_grant("code already used"),
        Err(e) => return internal(e),
    }
    match issue_tokens(&st, &p, client, &row, code, &code_hash, now).await {
        Ok(res) => res,
        Err(e) => internal(e),
    }
}

async fn issue_tokens(
    st: &AppState,
    p: &Provider,
    client: &Client,
    row: &CodeRow,
    code: &str,
    code_hash: &TokenHash,
    now: UnixMillis,
) -> Result<Response, String> {
    let user = st.users.get(row.user_id).await.map_err(|e| e.to_string())?.ok_or("user gone")?;
    let access = random_token(32);
    sqlx::query("INSERT INTO oidc_tokens (token_hash, client_id, user_id, scope, code_hash, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(TokenHash::of(&access).as_str())
        .bind(&client.id)
        .bind(user.id)
        .bind(&row.scope)
        .bind(code_hash.as_str())
        .bind(now.plus_ms(TOKEN_LIFE_SECS * 1000))
        .execute(&st.db)
        .await
        .map_err(|e| e.to_string())?;
    let time = |ms: i64| chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms).ok_or("time out of range");
    let mut name = LocalizedClaim::new();
    name.insert(None, EndUserName::new(user.name.clone()));
    let claims = CoreIdTokenClaims::new(
        IssuerUrl::new(p.issuer.clone()).map_err(|e| e.to_string())?,
        vec![Audience::new(client.id.clone())],
        time(now.0 + TOKEN_LIFE_SECS * 1000)?,
        time(now.0)?,
        StandardClaims::new(SubjectIdentifier::new(user.id.to_string())).set_name(Some(name)),
        EmptyAdditionalClaims {},
    )
    .set_auth_time(Some(time(row.auth_time)?))
    .set_nonce(row.nonce.clone().map(Nonce::new))
    .set_auth_method_refs(Some(vec![AuthenticationMethodReference::new("wechat_miniprogram".into())]));
    let key = p.keys.current(now).await?;
    let access_token = AccessToken::new(access);
    let id_token = CoreIdToken::new(
        claims,
        &*key,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        Some(&access_token),
        Some(&AuthorizationCode::new(code.to_string())),
    )
    .map_err(|e| e.to_string())?;
    let mut answer =
        CoreTokenResponse::new(access_token, CoreTokenType::Bearer, CoreIdTokenFields::new(Some(id_token), EmptyExtraTokenFields {}));
    answer.set_expires_in(Some(&Duration::from_secs(TOKEN_LIFE_SECS as u64)));
    answer.set_scopes(Some(row.scope.split(' ').filter(|s| !s.is_empty()).map(|s| Scope::new(s.to_string())).collect()));
    tracing::info!(client = client.id, user = user.id, "oidc: tokens issued");
    metrics::counter!("scanlogin_oidc_tokens_issued_total").increment(1);
    let rp = crate::server::caller::Caller { ip: String::new(), user_agent: format!("OIDC client {}", client.id) };
    st.audit.record(now, crate::server::audit::Kind::OidcTokens, Some(user.id), &rp, &client.name).await;
    let mut res = axum::Json(answer).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `GET|POST /oidc/userinfo` with `Authorization: Bearer <access token>`.
async fn userinfo(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if provider(&st).is_err() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let unauthorized = || {
        let mut res = StatusCode::UNAUTHORIZED.into_response();
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
        res
    };
    let Some(token) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| credentials(v, "bearer")) else {
        return unauthorized();
    };
    let row: Option<(i64, i64)> = match sqlx::query_as("SELECT user_id, expires_at FROM oidc_tokens WHERE token_hash = $1")
        .bind(TokenHash::of(token.trim()).as_str())
        .fetch_optional(&st.db)
        .await
    {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let Some((user_id, _)) = row.filter(|(_, exp)| st.clock.now() < UnixMillis(*exp)) else { return unauthorized() };
    let user = match st.users.get(user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return unauthorized(),
        Err(e) => return internal(e),
    };
    let mut name = LocalizedClaim::new();
    name.insert(None, EndUserName::new(user.name));
    let claims = CoreUserInfoClaims::new(
        StandardClaims::new(SubjectIdentifier::new(user.id.to_string())).set_name(Some(name)),
        EmptyAdditionalClaims {},
    );
    let mut res = axum::Json(claims).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `GET /oidc/logout`: RP-initiated logout. Ends the session; goes to
/// `post_logout_redirect_uri` only when it is exactly one the client registered (the
/// client known from `id_token_hint`, whose signature is ours, or `client_id`).
async fn end_session(State(st): State<AppState>, session: tower_sessions::Session, Query(q): Query<HashMap<String, String>>) -> Response {
    let p = match provider(&st) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    let hinted = match q.get("id_token_hint") {
        Some(hint) => match hinted_client(&st, &p, hint).await {
            Ok(c) => Some(c),
            Err(()) => return error_page(StatusCode::BAD_REQUEST, "id_token_hint 无效。The id_token_hint is not valid."),
        },
        None => None,
    };
    let client_id = hinted.or_else(|| q.get("client_id").cloned());
    let web = WebSession::new(session.clone(), st.site.session_life);
    let id = web.id();
    if let Err(e) = web.sign_out().await {
        tracing::error!(error = ?e, "oidc logout: session not cleared");
    }
    if let Some(id) = id {
        let _ = st.sessions.remove(&id).await;
    }
    let target = q.get("post_logout_redirect_uri").filter(|uri| {
        client_id.as_deref().and_then(|c| p.clients.get(c)).is_some_and(|c| c.post_logout_redirect_uris.iter().any(|u| u == *uri))
    });
    match target {
        Some(uri) => {
            let state: Vec<(&str, String)> = q.get("state").map(|s| vec![("state", s.clone())]).unwrap_or_default();
            redirect_with(uri, &state)
        }
        None if q.contains_key("post_logout_redirect_uri") => error_page(
            StatusCode::BAD_REQUEST,
            "已退出登录；退出后的跳转地址未登记，未跳转。Signed out; the post-logout redirect is not registered.",
        ),
        None => crate::server::http::found("/login"),
    }
}

/// The client (audience) of an ID token we signed; expired hints are fine (that is
/// what logging out late looks like).
async fn hinted_client(st: &AppState, p: &Provider, hint: &str) -> Result<String, ()> {
    use std::str::FromStr as _;
    let token = CoreIdToken::from_str(hint).map_err(|_| ())?;
    let jwks = p.keys.jwks(st.clock.now(), i64::MAX / 2).await.map_err(|_| ())?;
    let issuer = IssuerUrl::new(p.issuer.clone()).map_err(|_| ())?;
    let verifier = CoreIdTokenVerifier::new_public_client(openidconnect::ClientId::new(String::new()), issuer, jwks)
        .require_audience_match(false)
        .set_time_fn(|| chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
    let claims = token.claims(&verifier, |_: Option<&Nonce>| Ok(())).map_err(|_| ())?;
    claims.audiences().first().map(|a| a.to_string()).ok_or(())
}

/// The name of the client an `/oidc/resume/{id}` next path signs in to, for the login
/// page and the phone.
pub async fn client_name_for_next(st: &AppState, next: &str) -> Option<String> {
    let p = st.oidc.as_ref()?;
    let id = next.strip_prefix("/oidc/resume/")?.split(['?', '&']).next()?;
    let (client_id,): (String,) =
        sqlx::query_as("SELECT client_id FROM oidc_requests WHERE id = $1").bind(id).fetch_optional(&st.db).await.ok()??;
    p.clients.get(&client_id).map(|c| c.name.clone())
}

/// Forgets finished codes, expired tokens and abandoned requests.
pub async fn purge(st: &AppState, now: UnixMillis) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM oidc_requests WHERE expires_at < $1").bind(now).execute(&st.db).await?;
    // Codes stay a while after use so a replay is recognised (and revokes).
    sqlx::query("DELETE FROM oidc_codes WHERE expires_at < $1").bind(now.plus_ms(-TOKEN_LIFE_SECS * 1000)).execute(&st.db).await?;
    sqlx::query("DELETE FROM oidc_tokens WHERE expires_at < $1").bind(now).execute(&st.db).await?;
    Ok(())
}
