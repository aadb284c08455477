//! The whole HTTP surface: every route, and the middleware stacks a request can go
//! through.
//!
//! Why several stacks: the middleware wraps the router once, outermost first, and a
//! request pays for every layer it passes (each holds a future and a clone of the
//! service below it while the request is open). Pages and whatever is not an endpoint
//! take the **full** stack (edge, body limit, session, compression, asset caching, page
//! guards). The rest skip what does not concern them:
//! - the **browser's endpoints** (`/api/…`): edge, body limit, session, compression; no
//!   page or asset rule applies to them;
//! - the **phone's endpoints** (`/api/mp/…`): the same without the session layer (the
//!   phone's own tokens authenticate them);
//! - the **long-poll** (`/api/login/status`, what thousands of browsers hold open): no
//!   session layer, no compression; it reads the binding key through the session
//!   store's cache and never writes a session;
//! - **forward-auth's verify** (`/auth/verify`, asked before every request of every
//!   protected app): the edge without browser security headers, and the session layer;
//! - the demo's **WeChat** (`/_wechat`: simulator, simulated phone, mailbox): edge and
//!   body limit.
//!
//! Endpoints are routed by their own paths, not a wildcard (a wildcard route here would
//! leave its parameter in the request for the routes below to trip on).
//! docs/benchmarks.md has the figures that chose this.

use super::{api, edge, email, headers, health, invite, link, nojs, pages, profile, setup};
use crate::app::{App, shell};

/// The embedded simulator demo mode mounts at `/_wechat` (none in a build without the
/// `demo` feature, where this type has no values).
#[cfg(feature = "demo")]
pub type DemoSimulator = Arc<crate::server::simulator::Simulator>;
#[cfg(not(feature = "demo"))]
pub type DemoSimulator = std::convert::Infallible;
use crate::server::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{any, get};
use leptos_axum::{LeptosRoutes, generate_route_list};
#[cfg(feature = "demo")]
use std::sync::Arc;
use tower_http::compression::CompressionLayer;
use tower_sessions::SessionManagerLayer;
use tower_sessions::cookie::SameSite;

/// The app's page routes, listed once per process. Listing them renders the app with
/// every resource's load suppressed by a process-wide flag, and a resource first polled
/// anywhere in the process while that flag is up never loads (leptos-rs/leptos#4773): a
/// second server built in the same process (the tests, the bench) would leave a page
/// another server was rendering hanging forever. Listed once, before any server serves,
/// the flag is never up while a page renders.
fn route_list() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// The whole HTTP surface.
pub fn router(state: AppState, simulator: Option<DemoSimulator>, cookie_domain: Option<String>) -> Router {
    let routes = route_list();
    let sessions = SessionManagerLayer::new(state.sessions.clone())
        .with_name(state.site.cookie_name)
        .with_secure(state.site.secure)
        .with_same_site(SameSite::Lax)
        .with_http_only(true)
        .with_path("/")
        // A session starts anonymous and short-lived; signing in gives it the idle expiry.
        .with_expiry(crate::server::session::inactivity(state.site.session_life.anonymous));
    // Forward-auth reads its own cookie when one covers the apps' parent domain
    // (`COOKIE_DOMAIN`); scanlogin's own session cookie never leaves this host.
    let verify_sessions = match (&cookie_domain, state.site.forward_auth_cookie) {
        (Some(d), Some(name)) => sessions.clone().with_name(name).with_domain(d.clone()),
        _ => sessions.clone(),
    };
    let mut app = Router::new()
        .route("/lang", get(pages::set_lang))
        .route("/login/complete", axum::routing::post(nojs::complete))
        .route("/logout", axum::routing::post(nojs::logout))
        .route("/account/sign-out-others", axum::routing::post(nojs::revoke_others))
        .route("/setup/{secret}", get(setup::show).post(setup::claim))
        .route("/admin/user", axum::routing::post(nojs::admin_user))
        .route("/invite/{secret}", get(invite::show).post(invite::accept))
        .route("/admin/invite", axum::routing::post(invite::create))
        .route("/admin/invitation/revoke", axum::routing::post(invite::revoke))
        .route("/account/name", axum::routing::post(profile::rename))
        .route("/account/email", get(email::show).post(email::send))
        .route("/account/email/verify/{token}", get(email::verify))
        .route("/account/apps/revoke", axum::routing::post(profile::revoke_app))
        .route("/avatars/{file}", get(profile::avatar))
        .route("/q/{ticket}", get(link::show))
        // wx.uploadFile's multipart body is larger than the API's JSON limit.
        .route("/api/mp/avatar", axum::routing::post(profile::upload).layer(DefaultBodyLimit::max(profile::UPLOAD_BODY)))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(crate::server::metrics::serve))
        .route("/api/{*rest}", any(api::not_found))
        .leptos_routes_with_context(&state, routes, || {}, {
            let options = state.leptos.clone();
            move || shell(options.clone())
        });
    if let Some((name, body)) = state.site.qr_verify_file.clone() {
        app = app.route(&format!("/{name}"), get(move || std::future::ready(link::verify_file(body.clone()))));
    }
    // The demo's WeChat side (`/_wechat`): the mailbox and the simulator.
    let mut wechat: Option<Router<AppState>> = None;
    if matches!(*state.mailer, crate::server::mail::Mailer::Demo(_)) {
        let mailbox = Router::new()
            .route("/mailbox", get(crate::server::mail::mailbox_page))
            .route("/sim/mails", get(crate::server::mail::mails_json));
        wechat = Some(mailbox);
    }
    #[cfg(feature = "demo")]
    if let Some(sim) = simulator {
        wechat = Some(wechat.unwrap_or_default().merge(crate::server::simulator::router(sim)));
    }
    #[cfg(not(feature = "demo"))]
    let _: Option<DemoSimulator> = simulator;
    if state.oidc.is_some() {
        app = app.merge(crate::server::oidc::router());
    }
    app = app.merge(crate::server::forward_auth::router());
    let app = app
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(state.clone());
    // The middleware wraps the whole router once, outermost first. (`Router::layer`
    // would wrap every route, and each request would clone the whole stack at every
    // layer: 18 allocations per request, ~4 KiB held by each waiting long-poll.) The
    // edge is the request id, span, body limit, JSON failures and security headers in
    // one unboxed future (`http::edge`).
    let edge = edge::Edge { secure: state.site.secure, security_headers: true };
    // What every browser-facing stack starts with.
    let base = tower::ServiceBuilder::new().layer(edge).layer(DefaultBodyLimit::max(api::MAX_BODY));
    let common = base.clone().layer(sessions.clone());
    // gzip / brotli for whoever asks: pages and JSON (release assets come precompressed).
    let compressed = common.clone().map_response(axum::response::IntoResponse::into_response).layer(CompressionLayer::new());
    let full = compressed
        .clone()
        .layer(from_fn_with_state(state.clone(), headers::asset_caching))
        .layer(from_fn_with_state(state.clone(), pages::page_guards))
        .service(app.clone());
    // The API: no page or asset rule concerns `/api/…` (each `from_fn` layer is a boxed
    // future and a clone of the stack below it, ten times a login; issue 31).
    let api = compressed.service(app.clone());
    // The phone's endpoints (`/api/mp/…`) are authenticated by the phone's own tokens,
    // never by a browser session: no session layer either.
    let phone = base.clone().map_response(axum::response::IntoResponse::into_response).layer(CompressionLayer::new()).service(app.clone());
    // The status long-poll is what thousands of waiting browsers hold open at once: it
    // runs the same server function through only the layers that concern it (a JSON
    // answer of a few bytes needs no compression, no page or asset rule applies, and it
    // reads the session's binding key through the store's cache instead of the session
    // layer: it never writes a session). 40 → 12–14 KiB held per waiting browser
    // (docs/benchmarks.md).
    let longpoll = base.clone().service(app);
    // Forward-auth's verify runs before every request of every protected app: the edge
    // (its answers go to the proxy: no security headers) and the session layer.
    let verify = tower::ServiceBuilder::new()
        .layer(edge::Edge { security_headers: false, ..edge })
        .layer(verify_sessions)
        .service(crate::server::forward_auth::verify_router().with_state(state.clone()));
    let mut outer = Router::new().route_service("/auth/verify", verify).route_service("/api/login/status", longpoll);
    // Each endpoint by its own path: a wildcard route here would leave its parameter in
    // the request for the routes below to trip on. What is no endpoint goes the full way
    // (to `api::not_found`).
    let mut endpoints: std::collections::BTreeSet<&str> =
        leptos::server_fn::axum::server_fn_paths().map(|(path, _)| path).filter(|p| p.starts_with("/api/")).collect();
    endpoints.insert("/api/mp/avatar");
    endpoints.remove("/api/login/status");
    for path in endpoints {
        outer =
            if path.starts_with("/api/mp/") { outer.route_service(path, phone.clone()) } else { outer.route_service(path, api.clone()) };
    }
    // The demo's WeChat is WeChat's side: no session of ours, no page rules, nothing
    // worth compressing; the simulator the server itself calls twice a login.
    if let Some(wechat) = wechat {
        let wechat = wechat.fallback(|| async { axum::http::StatusCode::NOT_FOUND }).with_state(state);
        outer = outer.nest_service("/_wechat", base.service(wechat));
    }
    outer.fallback_service(full)
}
