//! HTTP plumbing around the Leptos app: the `/api` contract (JSON errors with the
//! contract's statuses, 400/413/415 before any server function runs, cross-site
//! refusal), server-side page guards, the language switch and security headers.

use crate::error::{AppError, ErrorCode};
use crate::i18n::Lang;
use crate::server::rules;
use crate::server::state::AppState;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::collections::HashMap;
use tower_sessions::Session;

/// The largest request body an `/api` endpoint accepts.
pub const MAX_BODY: usize = 16 * 1024;

/// A `302 Found` to a same-site path.
pub fn found(location: &str) -> Response {
    let mut res = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The language of a request: the `lang` cookie, else `Accept-Language`.
pub fn request_lang(headers: &HeaderMap) -> Lang {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("lang="))
        .map(str::to_string);
    let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
    Lang::negotiate(cookie.as_deref(), accept)
}

/// Renders an error as the contract's JSON, localized.
pub fn error_response(err: &AppError, lang: Lang) -> Response {
    let code = err.code;
    let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = serde_json::json!({ "code": code, "message": code.message(lang) });
    if let Some(secs) = err.retry_after {
        body["retry_after"] = secs.into();
    }
    let mut res = (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    if let Some(secs) = err.retry_after {
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Refuses a cookie-authenticated request that another site made the browser send.
/// Requests with neither `Origin` nor `Sec-Fetch-Site` (non-browser clients) pass.
pub fn check_same_site(site: &crate::server::state::Site, headers: &HeaderMap) -> Result<(), AppError> {
    if let Some(v) = headers.get("sec-fetch-site")
        && !matches!(v.as_bytes(), b"same-origin" | b"same-site" | b"none")
    {
        return Err(ErrorCode::CrossSite.into());
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null");
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let same = origin == site.public_url
            || (!host.is_empty() && (origin == format!("http://{host}") || origin == format!("https://{host}")));
        if !same {
            return Err(ErrorCode::CrossSite.into());
        }
    }
    Ok(())
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// The `/api` contract around the server functions.
pub async fn api_layer(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !(path == "/api" || path.starts_with("/api/")) {
        return next.run(req).await;
    }
    let lang = request_lang(req.headers());
    // The mini program carries no cookie: nothing for another site to ride on.
    if !path.starts_with("/api/mp/")
        && let Err(e) = check_same_site(&st.site, req.headers())
    {
        return error_response(&e, lang);
    }
    let req = if req.method() == Method::POST {
        if !is_json(req.headers()) {
            return error_response(&ErrorCode::UnsupportedMediaType.into(), lang);
        }
        let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_BODY) {
            return error_response(&ErrorCode::PayloadTooLarge.into(), lang);
        }
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
            return error_response(&ErrorCode::PayloadTooLarge.into(), lang);
        };
        // Not JSON at all (or nested beyond serde_json's depth limit): 400 here, before
        // the framework could answer in its own format.
        if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err() {
            return error_response(&ErrorCode::BadRequest.into(), lang);
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        req
    };
    let res = next.run(req).await;
    finish_api_response(res, lang).await
}

/// Gives every failure the contract's status and JSON body.
async fn finish_api_response(res: Response, lang: Lang) -> Response {
    let status = res.status();
    if !res.headers().contains_key("serverfnerror") && !status.is_client_error() && !status.is_server_error() {
        let mut res = res;
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return res;
    }
    let (_, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let err = serde_json::from_slice::<AppError>(&bytes).unwrap_or_else(|_| {
        AppError::new(match status {
            StatusCode::NOT_FOUND => ErrorCode::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::BadRequest,
            _ => {
                tracing::error!(%status, body = %String::from_utf8_lossy(&bytes[..bytes.len().min(200)]), "unexpected api failure");
                ErrorCode::Internal
            }
        })
    });
    error_response(&err, lang)
}

/// Server-side guards, answered before any HTML: `/login` when signed in goes on;
/// `/account` when signed out goes to the login page; `/` picks one of them.
pub async fn page_guards(State(st): State<AppState>, session: Session, req: Request, next: Next) -> Response {
    if req.method() != Method::GET {
        return next.run(req).await;
    }
    let path = req.uri().path().to_string();
    if !matches!(path.as_str(), "/" | "/login" | "/account") {
        return next.run(req).await;
    }
    let web = crate::server::session::WebSession(session);
    let signed_in = match web.user_id(st.clock.now_ms(), st.site.session_absolute_ms).await {
        Ok(u) => u.is_some(),
        Err(_) => false,
    };
    match (path.as_str(), signed_in) {
        ("/", true) => found("/account"),
        ("/", false) => found("/login"),
        ("/login", true) => {
            let query: HashMap<String, String> = req.uri().query().map(parse_query).unwrap_or_default();
            let target = query.get("next").and_then(|n| rules::validate_next(n)).unwrap_or(rules::DEFAULT_NEXT);
            found(target)
        }
        ("/account", false) => found("/login?next=/account"),
        _ => next.run(req).await,
    }
}

fn parse_query(q: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// `GET /lang?set=en&back=/login`: remembers the language in a cookie and goes back.
#[derive(Deserialize)]
pub struct LangSwitch {
    set: String,
    #[serde(default)]
    back: Option<String>,
}

/// The language switch.
pub async fn set_lang(Query(q): Query<LangSwitch>) -> Response {
    let lang = Lang::from_tag(&q.set).unwrap_or_default();
    let back = q.back.as_deref().and_then(rules::validate_next).unwrap_or("/login");
    let mut res = found(back);
    let cookie = format!("lang={}; Path=/; Max-Age=31536000; SameSite=Lax", lang.tag());
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// Headers every response carries: no framing (the QR cannot be shown inside another
/// site), no MIME sniffing, no referrer leaking to other origins.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    // Pages set their own policy (with the script nonce); everything else gets this one.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"),
        );
    }
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    res
}

/// The Content-Security-Policy of a rendered page: scripts only from us or carrying this
/// response's nonce (Leptos' hydration script), WASM allowed to compile, no framing.
pub fn set_page_csp() {
    use leptos::prelude::use_context;
    let Some(res) = use_context::<leptos_axum::ResponseOptions>() else { return };
    let script = match leptos::nonce::use_nonce() {
        Some(n) => format!("'self' 'nonce-{n}' 'wasm-unsafe-eval'"),
        None => "'self' 'wasm-unsafe-eval'".to_string(),
    };
    // `cargo leptos watch` reloads the page over a websocket.
    let connect = if std::env::var_os("LEPTOS_WATCH").is_some() { "'self' ws: wss:" } else { "'self'" };
    let csp = format!(
        "default-src 'self'; script-src {script}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
         connect-src {connect}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        res.insert_header(header::CONTENT_SECURITY_POLICY, v);
    }
}

/// The language and mode of the page being rendered (server side).
pub fn page_env() -> crate::app::PageEnv {
    use leptos::prelude::use_context;
    let lang = use_context::<axum::http::request::Parts>().map(|p| request_lang(&p.headers)).unwrap_or_default();
    let demo = use_context::<AppState>().is_some_and(|s| s.site.demo);
    crate::app::PageEnv { lang, demo }
}
