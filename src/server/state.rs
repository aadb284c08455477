//! The state every handler and server function shares.

use crate::server::clock::Clock;
use crate::server::db::Db;
use crate::server::session::SqlSessionStore;
use crate::server::tickets::Tickets;
use crate::server::users::SqlUserStore;
use crate::server::wechat::WechatClient;
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use std::sync::Arc;
use std::time::Duration;

/// Facts about this deployment.
#[derive(Clone, Debug)]
pub struct Site {
    /// Public URL without a trailing slash (`https://example.com`).
    pub public_url: String,
    /// Its host (`example.com`), shown on the phone.
    pub host: String,
    /// Cookies get `Secure` (the public URL is https).
    pub secure: bool,
    /// The session cookie's name (`session::cookie_name`).
    pub cookie_name: &'static str,
    /// With `COOKIE_DOMAIN`: forward-auth's own cookie (name; the domain is in the router).
    pub forward_auth_cookie: Option<&'static str>,
    /// `COOKIE_DOMAIN`.
    pub cookie_domain: Option<String>,
    /// Demo mode (embedded simulator, banner, test hooks).
    pub demo: bool,
    /// Longest status long-poll.
    pub longpoll: Duration,
    /// A login ends this long after it happened, ms.
    pub session_absolute: Duration,
    /// How long sessions live without activity.
    pub session_life: crate::server::session::SessionLifetimes,
    /// Proxies whose X-Forwarded-For is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Hosts forward-auth may send a browser back to (suffix match on a dot boundary).
    pub forward_auth_domains: Vec<String>,
    /// `/auth/return` only to https on the default port (`FORWARD_AUTH_STRICT_RETURN`).
    pub strict_return: bool,
    /// The bearer token `/metrics` wants; none: no `/metrics`.
    pub metrics_token: Option<String>,
    /// Who becomes a user on first scan.
    pub signup: crate::server::config::Signup,
    /// `LOGIN_NUMBER_MATCH`: the phone must pick the number the browser shows.
    pub number_match: bool,
    /// `WECHAT_QR_VERIFY_FILE`: its name (served at `/<name>`) and contents.
    pub qr_verify_file: Option<(String, Arc<[u8]>)>,
}

/// Shared state: one allocation, so the clone every request and server function takes
/// is one reference count, not one per field (the clones and drops of the fields were
/// 2–3% of a login's CPU, docs/benchmarks.md).
#[derive(Clone)]
pub struct AppState(Arc<State>);

impl AppState {
    /// The state `state`, shared.
    pub fn new(state: State) -> Self {
        AppState(Arc::new(state))
    }
}

impl std::ops::Deref for AppState {
    type Target = State;
    fn deref(&self) -> &State {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct State {
    pub leptos: LeptosOptions,
    pub db: Db,
    pub tickets: Arc<Tickets>,
    pub wechat: Arc<WechatClient>,
    /// Ticket ids with their codes, made ahead of demand.
    pub codes: Arc<crate::server::codes::CodePool>,
    /// Where mails go (SMTP, the demo mailbox, or nowhere).
    pub mailer: Arc<crate::server::mail::Mailer>,
    /// The phone browser's link into the mini program (`open_link`).
    pub open_links: Arc<crate::server::open_link::OpenLinks>,
    pub sessions: SqlSessionStore,
    pub users: SqlUserStore,
    pub audit: crate::server::audit::Audit,
    pub clock: Arc<dyn Clock>,
    /// Deployment facts.
    pub site: Arc<Site>,
    pub limits: Arc<crate::server::limits::Limits>,
    /// The OpenID Connect provider, when `OIDC_CLIENTS` names clients.
    pub oidc: Option<Arc<crate::server::oidc::Provider>>,
    /// Forward-auth's access rules (`ACCESS_RULES`), replaced whole when re-read.
    pub rules: Arc<std::sync::RwLock<Arc<crate::server::access::Rules>>>,
}

impl AppState {
    /// The access rules in force now.
    pub fn rules(&self) -> Arc<crate::server::access::Rules> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl AppState {
    /// The state, inside a server function or a page render.
    pub fn current() -> Result<AppState, crate::error::AppError> {
        leptos::prelude::use_context::<AppState>().ok_or_else(|| crate::error::AppError::internal("AppState missing from context"))
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(s: &AppState) -> Self {
        s.leptos.clone()
    }
}
