//! Builds the application from the configuration; used by `main` and by the tests,
//! which start the real thing on port 0.

use crate::app::{App, shell};
use crate::server::clock::{Clock, SystemClock};
use crate::server::codes::CodePool;
use crate::server::config::{Config, WechatArgs};
use crate::server::error::StartupError;
use crate::server::http::{self, api};
use crate::server::session::{SessionCache, SqlSessionStore};
use crate::server::simulator::{self, SimConfig, Simulator};
use crate::server::state::{AppState, Site};
use crate::server::tickets::{SqlTicketStore, Tickets};
use crate::server::users::SqlUserStore;
use crate::server::wechat::WechatClient;
use crate::server::{db, tokens};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{any, get};
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
    /// PostgreSQL: the URL to listen on for other instances' changes, and who is told.
    pg_listener: Option<(String, crate::server::changes::Listeners)>,
    router: Router,
    state: AppState,
    purge_interval: Duration,
    purge_grace_ms: i64,
    audit_retention_ms: i64,
}

/// Where this server is reachable.
struct Addresses {
    /// Its own loopback URL (the demo's WeChat client talks to the simulator there).
    self_url: String,
    /// The public URL without a trailing slash.
    public_url: String,
}

impl Application {
    /// Binds the listener, opens the database (running migrations) and wires the app.
    pub async fn build(config: &Config, leptos: LeptosOptions) -> Result<Self, StartupError> {
        config.validate().map_err(|e| StartupError::Config(e.to_string()))?;
        let credentials = config.wechat.credentials().map_err(|e| StartupError::Config(e.to_string()))?;
        let demo = credentials.is_none();
        let tcp = bind(config, &leptos, demo).await?;
        let addresses = addresses(config, &tcp)?;
        warn_about_exposure(config, &tcp, demo, &addresses);
        crate::server::metrics::install();
        let database_url = config.database_url.clone().unwrap_or_else(|| db::DEFAULT_URL.to_string());
        // This instance's name on the database (its own session notifications come back
        // to it; it ignores them).
        let instance = tokens::random_token(9);
        let pool = db::connect(&database_url, &instance, config.database_max_connections).await?;
        let backend = pool.backend();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let postgres = backend == db::Backend::Postgres;
        let (wechat, simulator) = wechat(&config.wechat, credentials, &addresses, clock.clone())?;
        // In real mode on PostgreSQL the fleet shares one access token.
        let wechat = Arc::new(if !demo && postgres { wechat.share_tokens(pool.pool().clone()) } else { wechat });
        let store = Arc::new(SqlTicketStore::new(pool.clone()));
        // Sessions are read through a cache; on PostgreSQL it serves only while the
        // listener that hears other instances' revocations is connected.
        let session_cache = Arc::new(SessionCache::new(Duration::from_secs(config.sessions.cache_secs), !postgres));
        // Several instances on one PostgreSQL database wake each other's long-polls and
        // drop each other's revoked sessions.
        let pg_listener = postgres.then(|| {
            (
                database_url.clone(),
                crate::server::changes::Listeners {
                    tickets: store.notifier(),
                    sessions: session_cache.clone(),
                    instance: instance.clone(),
                },
            )
        });
        let life = config.tickets.lifetimes().map_err(|e| StartupError::Config(e.to_string()))?;
        let tickets = Tickets::new(store, clock.clone(), life, usize::try_from(config.tickets.longpolls_per_browser).unwrap_or(usize::MAX));
        let secure = addresses.public_url.starts_with("https://");
        let host = url::Url::parse(&addresses.public_url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
        let config_err = |e: crate::server::config::ConfigError| StartupError::Config(e.to_string());
        let session_life = config.sessions.lifetimes(&config.tickets).map_err(config_err)?;
        let state = AppState {
            leptos,
            db: pool.clone(),
            tickets: Arc::new(tickets),
            // On PostgreSQL the fleet shares one pool.
            codes: Arc::new(CodePool::new(
                wechat.clone(),
                usize::try_from(config.wechat.qr_pool_size).unwrap_or(0),
                postgres.then(|| pool.pool().clone()),
                clock.clone(),
            )),
            wechat,
            sessions: SqlSessionStore::new(pool.clone(), session_cache),
            users: SqlUserStore::new(pool.clone()),
            audit: crate::server::audit::Audit::new(pool.clone()),
            clock,
            site: Arc::new(Site {
                secure,
                cookie_name: crate::server::session::cookie_name(secure, config.idp.cookie_domain.is_some()),
                public_url: addresses.public_url,
                host,
                demo,
                longpoll: Duration::from_secs(config.tickets.longpoll_secs),
                session_absolute_ms: config.sessions.absolute_ms().map_err(config_err)?,
                session_life,
                trusted_proxies: config.trusted_proxies.clone(),
                forward_auth_domains: config.idp.forward_auth_domains.clone(),
                metrics_token: config.metrics_token.clone().filter(|t| !t.is_empty()),
            }),
            limits: Arc::new(config.limits.build(postgres.then(|| pool.clone()))),
            oidc: None,
        };
        let state = AppState { oidc: oidc_provider(config, &state).await?, ..state };
        let router = router(state.clone(), simulator, config.idp.cookie_domain.clone());
        Ok(Application {
            listener: tcp,
            pg_listener,
            router,
            state,
            purge_interval: Duration::from_secs(config.tickets.purge_interval_secs),
            purge_grace_ms: config.tickets.purge_grace_ms().map_err(config_err)?,
            audit_retention_ms: i64::try_from(config.sessions.audit_retention_days).unwrap_or(3650) * 86_400_000,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn public_url(&self) -> &str {
        &self.state.site.public_url
    }

    /// The router (for `oneshot` tests).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, with the purge task beside it.
    ///
    /// When `shutdown` resolves (SIGTERM, Ctrl-C): `/readyz` turns 503, open long-polls
    /// answer at once with their ticket's current state, no new connections are
    /// accepted, requests in flight finish; after [`DRAIN_LIMIT`] it stops regardless.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let refill = tokio::spawn(self.state.codes.clone().refill());
        let purge = tokio::spawn(purge_loop(self.state.clone(), self.purge_interval, self.purge_grace_ms, self.audit_retention_ms));
        let changes = self.pg_listener.map(|(url, to)| tokio::spawn(crate::server::changes::listen(url, to)));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let tickets = self.state.tickets.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: draining long-polls and requests in flight");
            tickets.start_draining();
            stop_tx.send_replace(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let serve = axum::serve(self.listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(stopped(stop_rx.clone()));
        let served = tokio::select! {
            served = serve => served,
            _ = async { stopped(stop_rx).await; tokio::time::sleep(DRAIN_LIMIT).await } => {
                tracing::warn!("requests still in flight after {DRAIN_LIMIT:?}; stopping anyway");
                Ok(())
            }
        };
        purge.abort();
        refill.abort();
        if let Some(c) = changes {
            c.abort();
        }
        served
    }
}

/// How long a shutdown waits for requests in flight.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// `GET /healthz`: the process is alive.
async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the database answers and is migrated, and the server is not draining.
async fn readyz(axum::extract::State(st): axum::extract::State<AppState>) -> (axum::http::StatusCode, &'static str) {
    use axum::http::StatusCode;
    if st.tickets.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining");
    }
    let migrated: Result<(i64,), _> = sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations WHERE success").fetch_one(&st.db).await;
    match migrated {
        Ok((n,)) if n > 0 => (StatusCode::OK, "ready"),
        Ok(_) => (StatusCode::SERVICE_UNAVAILABLE, "not migrated"),
        Err(e) => {
            tracing::warn!(error = %e, "readyz: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
        }
    }
}

/// Binds the listening socket. Demo mode stays on loopback unless `--listen` says
/// otherwise.
async fn bind(config: &Config, leptos: &LeptosOptions, demo: bool) -> Result<TcpListener, StartupError> {
    let wanted = config.listen.unwrap_or(leptos.site_addr);
    let addr = if demo && config.listen.is_none() && !wanted.ip().is_loopback() {
        tracing::warn!(%wanted, "demo mode listens on loopback only; pass --listen to override");
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), wanted.port())
    } else {
        wanted
    };
    listen(addr).map_err(|source| StartupError::Listen { addr, source })
}

/// How many connections may wait to be accepted. Beyond tokio's default of 1024, a burst
/// of browsers arriving at once overflowed the queue: the kernel dropped their handshakes
/// and each retried a second later (the bench saw tens of thousands of such drops,
/// `nstat TcpExtListenOverflows`). Linux caps it at `net.core.somaxconn`, 4096 by default.
pub const LISTEN_BACKLOG: u32 = 4096;

/// A listening socket on `addr` with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, as tokio's
/// own `bind` sets it).
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

fn addresses(config: &Config, tcp: &TcpListener) -> Result<Addresses, StartupError> {
    let local = tcp.local_addr().map_err(|source| StartupError::Listen { addr: SocketAddr::from(([0, 0, 0, 0], 0)), source })?;
    let loopback = if local.ip().is_unspecified() { SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), local.port()) } else { local };
    let self_url = format!("http://{loopback}");
    let public_url = config.public_url.as_ref().map(|u| u.as_str().trim_end_matches('/').to_string()).unwrap_or(self_url.clone());
    Ok(Addresses { self_url, public_url })
}

/// The OpenID Connect provider when `OIDC_CLIENTS` is set: its clients read and checked,
/// a signing key made on first start.
async fn oidc_provider(config: &Config, state: &AppState) -> Result<Option<Arc<crate::server::oidc::Provider>>, StartupError> {
    use crate::server::oidc::{Provider, clients::Clients, keys::SigningKeys, store::OidcStore};
    let Some(path) = &config.idp.oidc_clients else { return Ok(None) };
    let clients = Clients::load(path).map_err(StartupError::Config)?;
    let keys = SigningKeys::new(state.db.clone());
    let rotate_ms = i64::try_from(config.idp.oidc_key_rotate_days).unwrap_or(3650) * 86_400_000;
    keys.ensure(state.clock.now(), rotate_ms).await.map_err(StartupError::Config)?;
    tracing::info!(clients = clients.len(), "OpenID Connect provider on");
    Ok(Some(Arc::new(Provider {
        clients,
        keys,
        store: OidcStore::new(state.db.clone()),
        issuer: state.site.public_url.clone(),
        rotate_ms,
    })))
}

/// Start-up warnings for deployments that are probably not what was meant.
fn warn_about_exposure(config: &Config, tcp: &TcpListener, demo: bool, at: &Addresses) {
    let exposed = tcp.local_addr().is_ok_and(|a| !a.ip().is_loopback());
    if demo && exposed {
        tracing::warn!(
            "DEMO MODE IS LISTENING BEYOND THIS MACHINE: anyone who reaches it can sign in as a simulated WeChat user \
             and drive the simulator's test hooks. Configure WECHAT_APPID and WECHAT_SECRET for real use."
        );
    }
    if at.public_url.starts_with("https://") && config.trusted_proxies.is_empty() {
        tracing::warn!(
            "PUBLIC_URL is https but TRUSTED_PROXIES is empty: behind a TLS-terminating proxy every client will look like \
             the proxy (one IP for all rate limits, the login history and the phone's confirm screen)"
        );
    }
}

/// The WeChat client: real WeChat with credentials; in demo mode a fresh app identity
/// per start, and our own client talking real HTTP to the simulator mounted on this
/// very server.
fn wechat(
    args: &WechatArgs,
    credentials: Option<crate::server::config::Credentials>,
    at: &Addresses,
    clock: Arc<dyn Clock>,
) -> Result<(WechatClient, Option<Arc<Simulator>>), StartupError> {
    let (config, simulator) = match credentials {
        Some(c) => (args.client(args.api_base.as_str().trim_end_matches('/').to_string(), c.appid, c.secret), None),
        None => {
            let appid = "wxdemo0000000000".to_string();
            let secret = tokens::random_token(24);
            let sim = Simulator::new(SimConfig {
                appid: appid.clone(),
                secret: secret.clone(),
                public_url: at.public_url.clone(),
                released_pages: vec![args.mp_page.clone()],
            });
            (args.client(format!("{}/_wechat", at.self_url), appid, SecretString::from(secret)), Some(sim))
        }
    };
    Ok((WechatClient::new(config, clock)?, simulator))
}

/// Deletes finished/expired tickets after a grace period, and dead sessions.
async fn purge_loop(state: AppState, every: Duration, grace_ms: i64, audit_ms: i64) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = state.clock.now();
        match state.tickets.purge(now.plus_ms(-grace_ms)).await {
            Ok(n) if n > 0 => tracing::debug!(tickets = n, "purged"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "ticket purge failed"),
        }
        if let Err(e) = state.sessions.delete_expired(now).await {
            tracing::warn!(error = %e, "session purge failed");
        }
        state.limits.forget_idle();
        if let Err(e) = state.limits.purge_shared(now).await {
            tracing::warn!(error = %e, "rate-limit purge failed");
        }
        if let Err(e) = state.codes.purge(now).await {
            tracing::warn!(error = %e, "code pool purge failed");
        }
        if let Err(e) = state.audit.purge(now.plus_ms(-audit_ms)).await {
            tracing::warn!(error = %e, "audit purge failed");
        }
        if let Some(p) = &state.oidc {
            if let Err(e) = p.purge(now).await {
                tracing::warn!(error = %e, "oidc purge failed");
            }
            if let Err(e) = p.keys.ensure(now, p.rotate_ms).await {
                tracing::warn!(error = %e, "oidc key rotation failed");
            }
        }
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState, simulator: Option<Arc<Simulator>>, cookie_domain: Option<String>) -> Router {
    let routes = generate_route_list(App);
    let sessions = SessionManagerLayer::new(state.sessions.clone())
        .with_name(state.site.cookie_name)
        .with_secure(state.site.secure)
        .with_same_site(SameSite::Lax)
        .with_http_only(true)
        .with_path("/")
        // A session starts anonymous and short-lived; signing in gives it the idle expiry.
        .with_expiry(Expiry::OnInactivity(state.site.session_life.anonymous));
    let sessions = match cookie_domain {
        Some(d) => sessions.with_domain(d),
        None => sessions,
    };
    let mut app = Router::new()
        .route("/lang", get(http::pages::set_lang))
        .route("/login/complete", axum::routing::post(http::nojs::complete))
        .route("/logout", axum::routing::post(http::nojs::logout))
        .route("/account/sign-out-others", axum::routing::post(http::nojs::revoke_others))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::server::metrics::serve))
        .route("/api/{*rest}", any(api::not_found))
        .leptos_routes_with_context(&state, routes, || {}, {
            let options = state.leptos.clone();
            move || shell(options.clone())
        });
    if let Some(sim) = simulator {
        app = app.nest("/_wechat", simulator::router(sim));
    }
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
    let edge = http::edge::Edge { secure: state.site.secure, security_headers: true };
    let common = tower::ServiceBuilder::new().layer(edge).layer(DefaultBodyLimit::max(api::MAX_BODY)).layer(sessions.clone());
    let full = common
        .clone()
        // gzip / brotli for whoever asks: pages and JSON (release assets come precompressed).
        .map_response(axum::response::IntoResponse::into_response)
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(from_fn_with_state(state.clone(), http::headers::asset_caching))
        .layer(from_fn_with_state(state.clone(), http::pages::page_guards))
        .service(app.clone());
    // The status long-poll is what thousands of waiting browsers hold open at once: it
    // runs the same server function through only the layers that concern it (a JSON
    // answer of a few bytes needs no compression, no page or asset rule applies, and it
    // reads the session's binding key through the store's cache instead of the session
    // layer: it never writes a session). 40 → 12–14 KiB held per waiting browser
    // (docs/benchmarks.md).
    let longpoll = tower::ServiceBuilder::new().layer(edge).layer(DefaultBodyLimit::max(api::MAX_BODY)).service(app);
    // Forward-auth's verify runs before every request of every protected app: the edge
    // (its answers go to the proxy: no security headers) and the session layer.
    let verify = tower::ServiceBuilder::new()
        .layer(http::edge::Edge { security_headers: false, ..edge })
        .layer(sessions)
        .service(crate::server::forward_auth::verify_router().with_state(state));
    Router::new().route_service("/auth/verify", verify).route_service("/api/login/status", longpoll).fallback_service(full)
}
