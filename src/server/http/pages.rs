//! The pages' side of HTTP: guards answered before any HTML, the language switch, the
//! Content-Security-Policy of a rendered page, and what a page renders in.

use super::found;
use crate::domain::{DEFAULT_NEXT, NextPath};
use crate::i18n::Lang;
use crate::server::error::request_lang;
use crate::server::handoff::Handoff;
use crate::server::session::WebSession;
use crate::server::state::AppState;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::Deserialize;
use tower_sessions::Session;

/// `/login` when signed in goes on; `/account` when signed out goes to the login page;
/// `/` picks one of them.
pub async fn page_guards(State(st): State<AppState>, session: Session, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if req.method() != Method::GET
        || !matches!(path, "/" | "/login" | "/account" | "/admin" | "/admin/audit" | "/admin/invitations" | "/admin/sessions")
    {
        return next.run(req).await;
    }
    let signed_in = WebSession::new(session, st.site.session_life).signed_in_now(&st).await.is_ok_and(|s| s.is_some());
    match (path, signed_in) {
        ("/", true) => found(DEFAULT_NEXT),
        ("/", false) => found("/login"),
        ("/login", true) => {
            #[derive(Deserialize)]
            struct LoginQuery {
                next: Option<NextPath>,
                fresh: Option<String>,
            }
            let handoff = match Query::<LoginQuery>::try_from_uri(req.uri()) {
                Ok(Query(q)) => Handoff::from_login(q.next, q.fresh.is_some()),
                Err(_) => Handoff::from_login(None, false),
            };
            // `fresh`: a site asked for a new scan (OIDC prompt=login, max_age).
            if handoff.fresh {
                return next.run(req).await;
            }
            found(&handoff.next())
        }
        ("/account", false) => found("/login?next=/account"),
        ("/admin" | "/admin/audit" | "/admin/invitations" | "/admin/sessions", false) => found(&format!("/login?next={path}")),
        _ => next.run(req).await,
    }
}

/// `GET /lang?set=en&back=/login`.
#[derive(Deserialize)]
pub struct LangSwitch {
    set: String,
    #[serde(default)]
    back: Option<String>,
}

/// The language switch: remembers the language in a cookie and goes back.
pub async fn set_lang(Query(q): Query<LangSwitch>) -> Response {
    let lang = Lang::from_tag(&q.set).unwrap_or_default();
    let back = q.back.and_then(|b| NextPath::try_from(b).ok()).map(String::from).unwrap_or_else(|| "/login".into());
    let mut res = found(&back);
    let cookie = format!("lang={}; Path=/; Max-Age=31536000; SameSite=Lax", lang.tag());
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
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

/// The language and mode of the page being rendered.
pub fn page_env() -> crate::app::PageEnv {
    use leptos::prelude::use_context;
    let parts = use_context::<axum::http::request::Parts>();
    let lang = parts.as_ref().map(|p| request_lang(&p.headers)).unwrap_or_default();
    let demo = use_context::<AppState>().is_some_and(|s| s.site.demo);
    let ua = parts.as_ref().and_then(|p| p.headers.get(axum::http::header::USER_AGENT)).and_then(|v| v.to_str().ok()).unwrap_or("");
    crate::app::PageEnv { lang, demo, device: crate::app::Device::from_user_agent(ua) }
}
