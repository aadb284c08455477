//! Builds the application from the configuration; used by `main` and by the tests,
//! which start the real thing on port 0.

use crate::app::{App, shell};
use crate::server::clock::{Clock, SystemClock};
use crate::server::config::Config;
use crate::server::limits::{KeyedLimit, Limits};
use crate::server::session::SqlSessionStore;
use crate::server::simulator::{self, SimConfig, Simulator};
use crate::server::state::{AppState, Site};
use crate::server::tickets::{Lifetimes, SqlTicketStore, Tickets};
use crate::server::wechat::{WechatClient, WechatConfig};
use crate::server::{db, http, rules};
use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use leptos::config::LeptosOptions;
use leptos_axum::{LeptosRoutes, generate_route_list};
use secrecy::SecretString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

/// A built, bound, not yet running server.
pub struct Application {
    listener: TcpListener,
    pg_listener: Option<(String, Arc<crate::server::tickets::store::Notifier>)>,
    router: Router,
    state: AppState,
    purge_interval: Duration,
    purge_grace_ms: i64,
}

impl Application {
    /// Binds the listener, opens the database (running migrations) and wires the app.
    pub async fn build(config: &Config, leptos: LeptosOptions) -> Result<Self, String> {
        config.validate()?;
        let credentials = config.credentials()?;
        let demo = credentials.is_none();
        let wanted = config.listen.unwrap_or(leptos.site_addr);
        let addr = if demo && config.listen.is_none() && !wanted.ip().is_loopback() {
            tracing::warn!(%wanted, "demo mode listens on loopback only; pass --listen to override");
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), wanted.port())
        } else {
            wanted
        };
        let tcp = TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = tcp.local_addr().map_err(|e| e.to_string())?;
        let loopback = if local.ip().is_unspecified() { SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), local.port()) } else { local };
        let self_url = format!("http://{loopback}");
        let public_url = config.public_url.as_ref().map(|u| u.as_str().trim_end_matches('/').to_string()).unwrap_or(self_url.clone());
        let host = url::Url::parse(&public_url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();

        let database_url = config.database_url.clone().unwrap_or_else(|| db::DEFAULT_URL.to_string());
        let (pool, backend) = db::connect(&database_url).await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);

        let (appid, secret, base, simulator) = match credentials {
            Some(c) => (c.appid, c.secret, config.wechat_api_base.as_str().trim_end_matches('/').to_string(), None),
            None => {
                // Demo: a fresh app identity per start; our own client talks real HTTP to
                // the simulator mounted on this very server.
                let appid = "wxdemo0000000000".to_string();
                let secret = rules::random_token(24);
                let sim = Simulator::new(SimConfig {
                    appid: appid.clone(),
                    secret: secret.clone(),
                    public_url: public_url.clone(),
                    released_pages: vec![config.wechat_mp_page.clone()],
                });
                (appid, SecretString::from(secret), format!("{self_url}/_wechat"), Some(sim))
            }
        };
        let wechat = WechatClient::new(
            WechatConfig {
                base,
                appid,
                secret,
                page: config.wechat_mp_page.clone(),
                env_version: config.wechat_env_version.clone(),
                check_path: config.wechat_check_path,
                qr_api: config.wechat_qr_api,
                timeout: Duration::from_secs(config.wechat_timeout_secs),
                busy_retries: 2,
                busy_backoff: Duration::from_millis(200),
            },
            clock.clone(),
        )
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;

        let life = Lifetimes {
            waiting_ms: config.ticket_ttl_secs as i64 * 1000,
            active_ms: config.ticket_scanned_ttl_secs as i64 * 1000,
        };
        let postgres = backend == db::Backend::Postgres;
        let store = Arc::new(SqlTicketStore::new(pool.clone(), postgres));
        // Several instances on one PostgreSQL database wake each other's long-polls.
        let pg_listener = postgres.then(|| (database_url.clone(), store.notifier()));
        let tickets = Tickets::new(store, clock.clone(), life, config.longpolls_per_browser as usize);
        let state = AppState {
            leptos,
            db: pool.clone(),
            tickets: Arc::new(tickets),
            wechat: Arc::new(wechat),
            sessions: SqlSessionStore::new(pool),
            clock,
            site: Arc::new(Site {
                secure: public_url.starts_with("https://"),
                public_url,
                host,
                demo,
                longpoll: Duration::from_secs(config.longpoll_secs),
                session_absolute_ms: config.session_absolute_secs as i64 * 1000,
                trusted_proxies: config.trusted_proxies.clone(),
            }),
            limits: Arc::new(Limits {
                tickets_per_ip: KeyedLimit::per_minute(config.rate_tickets_per_ip),
                tickets_per_browser: KeyedLimit::per_minute(config.rate_tickets_per_browser),
                phone_per_ip: KeyedLimit::per_minute(config.rate_phone_per_ip),
                phone_per_ticket: KeyedLimit::per_minute(config.rate_phone_per_ticket),
                live_tickets_per_browser: config.live_tickets_per_browser as i64,
            }),
        };
        let router = router(state.clone(), simulator, config.session_idle_secs);
        Ok(Application {
            listener: tcp,
            pg_listener,
            router,
            state,
            purge_interval: Duration::from_secs(config.purge_interval_secs),
            purge_grace_ms: config.purge_grace_secs as i64 * 1000,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The public URL.
    pub fn public_url(&self) -> &str {
        &self.state.site.public_url
    }

    /// The router (for `oneshot` tests).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, with the purge task beside it.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let purge = tokio::spawn(purge_loop(self.state.clone(), self.purge_interval, self.purge_grace_ms));
        let changes = self
            .pg_listener
            .map(|(url, notifier)| tokio::spawn(crate::server::tickets::store::listen_for_other_instances(url, notifier)));
        let served = axum::serve(self.listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await;
        purge.abort();
        if let Some(c) = changes {
            c.abort();
        }
        served
    }
}

/// Deletes finished/expired tickets after a grace period, and dead sessions.
async fn purge_loop(state: AppState, every: Duration, grace_ms: i64) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = state.clock.now_ms();
        match state.tickets.purge(now - grace_ms).await {
            Ok(n) if n > 0 => tracing::debug!(tickets = n, "purged"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "ticket purge failed"),
        }
        if let Err(e) = state.sessions.delete_expired(now).await {
            tracing::warn!(error = %e, "session purge failed");
        }
        state.limits.forget_idle();
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState, simulator: Option<Arc<Simulator>>, session_idle_secs: u64) -> Router {
    let routes = generate_route_list(App);
    let sessions = SessionManagerLayer::new(state.sessions.clone())
        .with_name("scanlogin_session")
        .with_secure(state.site.secure)
        .with_same_site(SameSite::Lax)
        .with_http_only(true)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(session_idle_secs as i64)));
    let mut app = Router::new().route("/lang", get(http::set_lang)).leptos_routes_with_context(
        &state,
        routes,
        || {},
        {
            let options = state.leptos.clone();
            move || shell(options.clone())
        },
    );
    if let Some(sim) = simulator {
        app = app.nest("/_wechat", simulator::router(sim));
    }
    app.fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(from_fn_with_state(state.clone(), http::api_layer))
        .layer(from_fn_with_state(state.clone(), http::page_guards))
        .layer(from_fn(http::security_headers))
        .layer(sessions)
        .layer(
            // Spans name the path only: simulator URLs carry secrets in their query.
            tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
            }),
        )
        .with_state(state)
}
