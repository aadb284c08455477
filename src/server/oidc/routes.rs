//! The provider's HTTP handlers: thin, each reading a typed request, asking the store
//! and answering with `?` on [`OidcError`].

use super::claims::{IdToken, IdTokenClaims, TokenResponse, UserInfoClaims, groups_claim, standard_claims, subject};
use super::discovery::metadata;
use super::error::OidcError;
use super::request::{AuthorizeQuery, AuthorizeRequest, ClientCredentials, Grant, credentials};
use super::store::{PendingRequest, Redeemed};
use super::{CODE_LIFE, Provider, REQUEST_LIFE, TOKEN_LIFE};
use crate::domain::UnixMillis;
use crate::server::audit::Kind;
use crate::server::caller::Caller;
use crate::server::handoff::Handoff;
use crate::server::http::found;
use crate::server::session::WebSession;
use crate::server::state::AppState;
use crate::server::tokens::{TokenHash, constant_time_eq, random_token};
use axum::Form;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJwsSigningAlgorithm, CoreTokenType};
use openidconnect::{
    AccessToken, Audience, AuthenticationMethodReference, AuthorizationCode, EmptyExtraTokenFields, IdTokenFields, IssuerUrl, Nonce, Scope,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The provider, for handlers of its paths; 404 when none is configured.
pub struct Oidc(pub Arc<Provider>);

impl FromRequestParts<AppState> for Oidc {
    type Rejection = OidcError;

    async fn from_request_parts(_parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        st.oidc.clone().map(Oidc).ok_or(OidcError::NotEnabled)
    }
}

/// A JSON answer no cache keeps (tokens, claims).
fn no_store_json(body: impl serde::Serialize) -> Response {
    let mut res = axum::Json(body).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `GET /.well-known/openid-configuration`.
pub async fn discovery(Oidc(p): Oidc) -> Result<Response, OidcError> {
    Ok(axum::Json(metadata(&p.issuer).map_err(OidcError::internal)?).into_response())
}

/// `GET /oidc/jwks`.
pub async fn jwks(State(st): State<AppState>, Oidc(p): Oidc) -> Result<Response, OidcError> {
    // A replaced key stays published until every token it signed has expired.
    let set = p.keys.jwks(st.clock.now(), TOKEN_LIFE + Duration::from_secs(300)).await.map_err(OidcError::internal)?;
    Ok(axum::Json(set).into_response())
}

/// `GET /oidc/authorize`: a code at once for a signed-in browser (recently enough), else
/// the request kept while the person scans.
pub async fn authorize(
    State(st): State<AppState>,
    Oidc(p): Oidc,
    caller: Caller,
    web: WebSession,
    Query(q): Query<AuthorizeQuery>,
) -> Result<Response, OidcError> {
    OidcError::check_limit(&st.limits.oidc_authorize_per_ip, &caller, false).await?;
    let now = st.clock.now();
    let (req, not_before) = AuthorizeRequest::parse(&q, &p.clients, &p.issuer, now)?;
    let answer = issue_code(&st, &p, &web, &req, not_before, now, &caller).await?;
    if let Answer::Code(res) = answer {
        return Ok(res);
    }
    if req.wants_none() {
        let (error, why) = match answer {
            Answer::NeedsConsent => ("consent_required", "the person has not allowed this site yet"),
            Answer::NeedsEmail => ("interaction_required", "the site needs a verified email address"),
            _ => ("login_required", "no signed-in session"),
        };
        return Err(OidcError::Redirect(req.answer(&p.issuer, error, why)));
    }
    let id = random_token(16);
    let browser = web.existing_browser_key().await?;
    p.store.save_request(&id, &req, not_before, now.plus(REQUEST_LIFE), browser.as_deref()).await?;
    Ok(found(&answer.next_step(&id, not_before)))
}

/// `GET /oidc/resume/{id}`: after the scan, the stored request answered for the now
/// signed-in browser.
pub async fn resume(
    State(st): State<AppState>,
    Oidc(p): Oidc,
    caller: Caller,
    web: WebSession,
    Path(id): Path<String>,
) -> Result<Response, OidcError> {
    let now = st.clock.now();
    let Some(PendingRequest { request, not_before, expires_at }) = p.store.request(&id).await? else {
        return Err(OidcError::Page {
            status: StatusCode::NOT_FOUND,
            message: "登录请求不存在或已过期，请回到应用重新登录。The sign-in request is unknown or expired.",
        });
    };
    if now >= expires_at {
        return Err(OidcError::Page {
            status: StatusCode::GONE,
            message: "登录请求已过期，请回到应用重新登录。The sign-in request expired.",
        });
    }
    match issue_code(&st, &p, &web, &request, not_before, now, &caller).await? {
        Answer::Code(res) => {
            if let Err(e) = p.store.delete_request(&id).await {
                tracing::warn!(error = %e, "oidc: an answered request was not deleted (the purge will)");
            }
            Ok(res)
        }
        other => Ok(found(&other.next_step(&id, not_before))),
    }
}

/// `GET /oidc/consent/{id}`: “允许 Grafana 使用你的账号登录？”, for a signed-in person and a
/// pending request of a client they never allowed. The buttons post back (same-site).
pub async fn consent_page(
    State(st): State<AppState>,
    Oidc(p): Oidc,
    web: WebSession,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, OidcError> {
    use crate::server::http::{esc, message_page};
    let (request, client) = pending_for_consent(&st, &p, &id).await?;
    if web.signed_in_now(&st).await?.is_none() {
        return Ok(found(&Handoff::oidc(&id, false).login_url()));
    }
    let lang = crate::server::error::request_lang(&headers);
    let ui = lang.ui();
    let scopes: Vec<&str> = request.scopes().filter(|s| *s != "openid").collect();
    let body = format!(
        "<p data-testid=\"consent\">{}</p><p class=\"muted\">{}</p>\
         <form method=\"post\" action=\"/oidc/consent/{id}\"><button type=\"submit\" name=\"decision\" value=\"allow\" data-testid=\"allow\">{}</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\" data-testid=\"deny\">{}</button></form>",
        esc(&ui.consent_question.replace("{site}", &client)),
        esc(&format!("{}{}", ui.consent_scopes, if scopes.is_empty() { "—".to_string() } else { scopes.join(", ") })),
        esc(ui.consent_allow),
        esc(ui.consent_deny),
        id = esc(&id),
    );
    Ok(message_page(StatusCode::OK, lang.tag(), ui.consent_title, &body))
}

/// `POST /oidc/consent/{id}` `decision=allow|deny`: allowed, remembered and on to the code;
/// denied, back to the client with `access_denied`.
pub async fn consent_answer(
    State(st): State<AppState>,
    Oidc(p): Oidc,
    web: WebSession,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, OidcError> {
    let (request, _) = pending_for_consent(&st, &p, &id).await?;
    if crate::server::http::api::check_same_site(&headers, &st.site.public_url).is_err() {
        return Err(OidcError::Page {
            status: StatusCode::FORBIDDEN,
            message: "拒绝来自其他网站的请求。Requests from other sites are refused.",
        });
    }
    let Some(who) = web.signed_in_now(&st).await? else {
        return Ok(found(&Handoff::oidc(&id, false).login_url()));
    };
    if form.get("decision").map(String::as_str) == Some("allow") {
        p.store.grant_consent(who.user, &request.client_id, st.clock.now()).await?;
        st.audit.record(st.clock.now(), Kind::OidcConsent, Some(who.user), &caller, &request.client_id).await;
        return Ok(found(&format!("/oidc/resume/{id}")));
    }
    p.store.delete_request(&id).await?;
    Err(OidcError::Redirect(request.answer(&p.issuer, "access_denied", "the person did not allow this site")))
}

/// The pending request `id` and its client's name, while it lives.
async fn pending_for_consent(st: &AppState, p: &Provider, id: &str) -> Result<(AuthorizeRequest, String), OidcError> {
    let gone = OidcError::Page {
        status: StatusCode::NOT_FOUND,
        message: "登录请求不存在或已过期，请回到应用重新登录。The sign-in request is unknown or expired.",
    };
    let Some(PendingRequest { request, expires_at, .. }) = p.store.request(id).await? else { return Err(gone) };
    if st.clock.now() >= expires_at {
        return Err(gone);
    }
    let name = p.clients.get(&request.client_id).map(|c| c.name.clone()).ok_or(gone)?;
    Ok((request, name))
}

/// With a signed-in session that logged in at `not_before` or later (`prompt=login`,
/// `max_age`), whom the client admits and who allowed it: a code for the client, sent to
/// its redirect URI. Otherwise what is needed first.
async fn issue_code(
    st: &AppState,
    p: &Provider,
    web: &WebSession,
    req: &AuthorizeRequest,
    not_before: UnixMillis,
    now: UnixMillis,
    caller: &Caller,
) -> Result<Answer, OidcError> {
    let Some(who) = web.signed_in(now, st.site.session_absolute).await? else { return Ok(Answer::NeedsLogin) };
    if who.login_at < not_before {
        return Ok(Answer::NeedsLogin);
    }
    let client = p.clients.get(&req.client_id).ok_or(OidcError::Page { status: StatusCode::BAD_REQUEST, message: "unknown client" })?;
    let user = st.users.cached(who.user).await?.ok_or_else(|| OidcError::internal("a signed-in session's user is gone"))?;
    // Nothing is issued for someone the client's rule does not admit (nor for anyone
    // waiting for approval, or disabled meanwhile).
    if let Err(why) = client.allow.check(&user) {
        let detail = crate::server::access::refusal_detail(&client.name, why, &client.allow);
        st.audit.record(now, Kind::AccessDenied, Some(user.id), caller, &detail).await;
        return Err(OidcError::Redirect(req.answer(&p.issuer, "access_denied", "this account may not sign in to this site")));
    }
    // A site the person never confirmed a login for, nor allowed: asked once first, so
    // that one scan for one site does not silently sign them in everywhere.
    if !p.store.has_consent(user.id, &client.id).await? {
        return Ok(Answer::NeedsConsent);
    }
    // A client that insists on an email (`require_email`) gets none unverified: the
    // person adds and verifies one first, and the request goes on from there.
    if client.require_email && user.email.is_none() {
        return Ok(Answer::NeedsEmail);
    }
    let code = random_token(32);
    let session = web.id().map(|id| crate::server::session::stored_key(&id));
    p.store.save_code(&TokenHash::of(&code), req, who.user, who.login_at, session.as_ref(), now.plus(CODE_LIFE)).await?;
    tracing::info!(client = client.id, user = %who.user, "oidc: code issued");
    st.audit.record(now, Kind::OidcCode, Some(who.user), caller, &client.name).await;
    Ok(Answer::Code(req.redirect(&p.issuer, vec![("code", code)]).into_response()))
}

/// What an authorization request gets for the browser asking.
enum Answer {
    /// The code, on its way to the client.
    Code(Response),
    /// A (new) scan first.
    NeedsLogin,
    /// Signed in, but the person never allowed this client: the consent page first.
    NeedsConsent,
    /// The client requires an email and the person has no verified one: the email page.
    NeedsEmail,
}

impl Answer {
    /// Where the browser goes for the stored request `id` when no code came.
    fn next_step(&self, id: &str, not_before: UnixMillis) -> String {
        match self {
            Answer::NeedsConsent => format!("/oidc/consent/{id}"),
            Answer::NeedsEmail => format!("/account/email?next=/oidc/resume/{id}"),
            Answer::NeedsLogin | Answer::Code(_) => Handoff::oidc(id, not_before.0 > 0).login_url(),
        }
    }
}

/// A client's own request (token, revocation): within the per-IP limit, and from a client
/// that proves who it is.
async fn client_request<'p>(
    st: &AppState,
    p: &'p Provider,
    caller: &Caller,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<&'p super::clients::Client, OidcError> {
    OidcError::check_limit(&st.limits.oidc_token_per_ip, caller, true).await?;
    ClientCredentials::from_request(headers, form).authenticate(&p.clients)
}

/// `POST /oidc/token` (form): the code exchange.
pub async fn token(
    State(st): State<AppState>,
    Oidc(p): Oidc,
    caller: Caller,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, OidcError> {
    let client = client_request(&st, &p, &caller, &headers, &form).await?;
    let Grant::AuthorizationCode { code, redirect_uri, code_verifier } = Grant::from_form(&form)?;
    let code_hash = TokenHash::of(&code);
    let now = st.clock.now();
    let grant = p.store.code(&code_hash).await?.ok_or(OidcError::invalid_grant("unknown code"))?;
    if grant.used_at.is_some() {
        // A replayed code: whatever its first exchange issued is revoked.
        let revoked = p.store.revoke_code_tokens(&code_hash).await?;
        tracing::warn!(client = client.id, revoked, "oidc: code replayed");
        return Err(OidcError::invalid_grant("code already used"));
    }
    if grant.client_id != client.id {
        return Err(OidcError::invalid_grant("code issued to another client"));
    }
    if now >= UnixMillis(grant.expires_at) {
        return Err(OidcError::invalid_grant("code expired"));
    }
    if redirect_uri.as_ref() != Some(&grant.redirect_uri) {
        return Err(OidcError::invalid_grant("redirect_uri does not match the authorization request"));
    }
    match (&grant.code_challenge, &code_verifier) {
        (Some(challenge), Some(verifier)) if constant_time_eq(&verifier.s256(), challenge) => {}
        (Some(_), Some(_)) => return Err(OidcError::invalid_grant("PKCE verification failed")),
        (Some(_), None) => return Err(OidcError::invalid_grant("code_verifier missing")),
        (None, Some(_)) => return Err(OidcError::invalid_grant("no PKCE challenge was sent")),
        (None, None) if client.is_public() => return Err(OidcError::invalid_grant("a public client must use PKCE")),
        (None, None) => {}
    }
    let user = st.users.cached(grant.user_id).await?.ok_or_else(|| OidcError::internal("the code's user is gone"))?;
    // Taken out of the client's rule (or disabled) since the code was issued.
    if client.allow.check(&user).is_err() {
        return Err(OidcError::invalid_grant("this account may not sign in to this site"));
    }
    let access = random_token(32);
    match p.store.redeem(&code_hash, &grant, &TokenHash::of(&access), now, now.plus(TOKEN_LIFE)).await? {
        Redeemed::Issued => {}
        Redeemed::AlreadyUsed { revoked } => {
            // Lost a race with another exchange of the same code: a replay all the same.
            tracing::warn!(client = client.id, revoked, "oidc: code replayed during its first exchange");
            return Err(OidcError::invalid_grant("code already used"));
        }
    }
    let time = |ms: i64| chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms).ok_or_else(|| OidcError::internal("time out of range"));
    let claims = IdTokenClaims::new(
        IssuerUrl::new(p.issuer.clone()).map_err(OidcError::internal)?,
        vec![Audience::new(client.id.clone())],
        time(now.plus(TOKEN_LIFE).0)?,
        time(now.0)?,
        standard_claims(&user, subject(&user, &client.id, client.legacy_subject, &p.pairwise_key), &grant.scope, &p.issuer),
        groups_claim(&user, &grant.scope),
    )
    .set_auth_time(Some(time(grant.auth_time)?))
    .set_nonce(grant.nonce.clone().map(Nonce::new))
    .set_auth_method_refs(Some(vec![AuthenticationMethodReference::new("wechat_miniprogram".into())]));
    let key = p.keys.current(now).await.map_err(OidcError::internal)?;
    let access_token = AccessToken::new(access);
    let id_token = IdToken::new(
        claims,
        &*key,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        Some(&access_token),
        Some(&AuthorizationCode::new(code)),
    )
    .map_err(OidcError::internal)?;
    let mut answer = TokenResponse::new(access_token, CoreTokenType::Bearer, IdTokenFields::new(Some(id_token), EmptyExtraTokenFields {}));
    answer.set_expires_in(Some(&TOKEN_LIFE));
    answer.set_scopes(Some(grant.scope.split(' ').filter(|s| !s.is_empty()).map(|s| Scope::new(s.to_string())).collect()));
    tracing::info!(client = client.id, user = %user.id, "oidc: tokens issued");
    metrics::counter!("scanlogin_oidc_tokens_issued_total").increment(1);
    st.audit.record(now, Kind::OidcTokens, Some(user.id), crate::server::audit::Actor::Client(&client.id), &client.name).await;
    Ok(no_store_json(answer))
}

/// `POST /oidc/revoke` (RFC 7009): a client revokes one of its access tokens. The client
/// authenticates as at the token endpoint; an unknown token, or another client's, is
/// answered 200 too and revokes nothing (RFC 7009 §2.2).
pub async fn revoke(
    State(st): State<AppState>,
    Oidc(p): Oidc,
    caller: Caller,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, OidcError> {
    let client = client_request(&st, &p, &caller, &headers, &form).await?;
    let token = form.get("token").filter(|t| !t.is_empty()).ok_or(OidcError::invalid_token_request("token missing"))?;
    let revoked = p.store.revoke_token(&TokenHash::of(token), &client.id).await?;
    tracing::info!(client = client.id, revoked, "oidc: revocation request");
    Ok(no_store_json(serde_json::json!({})))
}

/// `GET|POST /oidc/userinfo` with `Authorization: Bearer <access token>`: the claims of
/// the token's scopes.
pub async fn userinfo(State(st): State<AppState>, Oidc(p): Oidc, headers: HeaderMap) -> Result<Response, OidcError> {
    let token = credentials(&headers, "bearer").ok_or(OidcError::Bearer)?;
    let (user_id, scope, client_id) = p.store.token(&TokenHash::of(token), st.clock.now()).await?.ok_or(OidcError::Bearer)?;
    let user = st.users.cached(user_id).await?.ok_or(OidcError::Bearer)?;
    // The token's client must still admit the person (groups change, people get disabled).
    let client = p.clients.get(&client_id).ok_or(OidcError::Bearer)?;
    client.allow.check(&user).map_err(|_| OidcError::Bearer)?;
    let sub = subject(&user, &client.id, client.legacy_subject, &p.pairwise_key);
    Ok(no_store_json(UserInfoClaims::new(standard_claims(&user, sub, &scope, &p.issuer), groups_claim(&user, &scope))))
}

/// `GET /oidc/logout`: RP-initiated logout, parameters in the query.
pub async fn end_session_get(
    State(st): State<AppState>,
    Oidc(p): Oidc,
    caller: Caller,
    web: WebSession,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, OidcError> {
    end_session(&st, &p, &caller, &web, &headers, false, &q).await
}

/// `POST /oidc/logout`: RP-initiated logout, parameters in a form body (also our own
/// confirmation page's form).
pub async fn end_session_post(
    State(st): State<AppState>,
    Oidc(p): Oidc,
    caller: Caller,
    web: WebSession,
    headers: HeaderMap,
    Form(q): Form<HashMap<String, String>>,
) -> Result<Response, OidcError> {
    end_session(&st, &p, &caller, &web, &headers, true, &q).await
}

/// Ends the session (recorded in the audit trail); goes to `post_logout_redirect_uri`
/// only when it is exactly one the client registered (the client known from
/// `id_token_hint`, whose signature is ours, or `client_id`). Without a hint naming the
/// signed-in person, nobody is signed out by a link or another site's form: the person is
/// asked first, on a page whose button posts here from our own origin.
async fn end_session(
    st: &AppState,
    p: &Provider,
    caller: &Caller,
    web: &WebSession,
    headers: &HeaderMap,
    post: bool,
    q: &HashMap<String, String>,
) -> Result<Response, OidcError> {
    let hinted = match q.get("id_token_hint") {
        Some(hint) => Some(hinted_client(st, p, hint).await.map_err(|()| OidcError::Page {
            status: StatusCode::BAD_REQUEST,
            message: "id_token_hint 无效。The id_token_hint is not valid.",
        })?),
        None => None,
    };
    let signed_in = web.signed_in_now(st).await?;
    if let Some(who) = &signed_in {
        let hint_names_them = match (&hinted, st.users.cached(who.user).await?) {
            (Some((client, sub)), Some(user)) => {
                p.clients.get(client).is_some_and(|c| subject(&user, &c.id, c.legacy_subject, &p.pairwise_key) == *sub)
            }
            _ => false,
        };
        let confirmed = post
            && q.get("confirm").map(String::as_str) == Some("1")
            && crate::server::http::api::check_same_site(headers, &st.site.public_url).is_ok();
        if !hint_names_them && !confirmed {
            return Ok(confirm_logout_page(headers, q));
        }
    }
    let client_id = hinted.map(|(c, _)| c).or_else(|| q.get("client_id").cloned());
    crate::server::signin::sign_out(st, web, caller).await;
    let target = q.get("post_logout_redirect_uri").filter(|uri| {
        client_id.as_deref().and_then(|c| p.clients.get(c)).is_some_and(|c| c.post_logout_redirect_uris.iter().any(|u| u == *uri))
    });
    match target {
        Some(uri) => {
            let Ok(mut url) = url::Url::parse(uri) else {
                return Err(OidcError::Page { status: StatusCode::BAD_REQUEST, message: "post_logout_redirect_uri" });
            };
            if let Some(s) = q.get("state") {
                url.query_pairs_mut().append_pair("state", s);
            }
            Ok(found(url.as_str()))
        }
        None if q.contains_key("post_logout_redirect_uri") => Err(OidcError::Page {
            status: StatusCode::BAD_REQUEST,
            message: "已退出登录；退出后的跳转地址未登记，未跳转。Signed out; the post-logout redirect is not registered.",
        }),
        None => Ok(found("/login")),
    }
}

/// "退出登录？": the request's parameters carried on, and `confirm=1`.
fn confirm_logout_page(headers: &HeaderMap, q: &HashMap<String, String>) -> Response {
    use crate::server::http::{esc, message_page};
    let lang = crate::server::error::request_lang(headers);
    let ui = lang.ui();
    let hidden: String = ["client_id", "post_logout_redirect_uri", "state"]
        .iter()
        .filter_map(|k| q.get(*k).map(|v| format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", esc(v))))
        .collect();
    let body = format!(
        "<p>{}</p><form method=\"post\" action=\"/oidc/logout\">{hidden}<input type=\"hidden\" name=\"confirm\" value=\"1\">\
         <button type=\"submit\" data-testid=\"confirm-logout\">{}</button></form><p><a href=\"/account\">{}</a></p>",
        esc(ui.logout_question),
        esc(ui.logout),
        esc(ui.account_title)
    );
    message_page(StatusCode::OK, lang.tag(), ui.logout, &body)
}

/// The client (audience) and subject of an ID token we signed; expired hints are fine
/// (that is what logging out late looks like), up to [`Provider::hint_max_age`] old.
async fn hinted_client(st: &AppState, p: &Provider, hint: &str) -> Result<(String, String), ()> {
    use std::str::FromStr as _;
    let token = CoreIdToken::from_str(hint).map_err(|_| ())?;
    let jwks = p.keys.jwks(st.clock.now(), Duration::MAX).await.map_err(|_| ())?;
    let issuer = IssuerUrl::new(p.issuer.clone()).map_err(|_| ())?;
    let verifier = CoreIdTokenVerifier::new_public_client(openidconnect::ClientId::new(String::new()), issuer, jwks)
        .require_audience_match(false)
        .set_time_fn(|| chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
    let claims = token.claims(&verifier, |_: Option<&Nonce>| Ok(())).map_err(|_| ())?;
    // No older than a login can last: an older hint names no live login, and a leaked one
    // must not work for ever.
    let issued = UnixMillis(claims.issue_time().timestamp_millis());
    if st.clock.now().since(issued) > p.hint_max_age {
        return Err(());
    }
    let client = claims.audiences().first().map(|a| a.to_string()).ok_or(())?;
    Ok((client, claims.subject().to_string()))
}
