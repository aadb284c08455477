//! The composition root: builds the application from the configuration (database,
//! stores, WeChat client, state, router) and runs it with its background tasks; used by
//! `main` and by the tests, which start the real thing on port 0. The HTTP surface is
//! `http::router`, the periodic upkeep `maintenance`.

use crate::server::clock::{Clock, SystemClock};
use crate::server::codes::CodePool;
use crate::server::config::{Config, Signup, WechatArgs};
use crate::server::error::StartupError;
use crate::server::http;
use crate::server::open_link::OpenLinks;
use crate::server::session::{SessionCache, SqlSessionStore};
#[cfg(feature = "demo")]
use crate::server::simulator::{SimConfig, Simulator};
use crate::server::state::{AppState, Site, State};
use crate::server::tickets::{SqlTicketStore, Tickets};
use crate::server::users::SqlUserStore;
use crate::server::wechat::{QrMode, WechatClient};
use crate::server::{db, tokens};
use axum::Router;
use leptos::config::LeptosOptions;
#[cfg(feature = "demo")]
use secrecy::SecretString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A built, bound, not yet running server.
pub struct Application {
    listener: TcpListener,
    /// PostgreSQL: the URL to listen on for other instances' changes, and who is told.
    pg_listener: Option<(String, crate::server::changes::Listeners)>,
    router: Router,
    state: AppState,
    purge_interval: Duration,
    purge_grace: Duration,
    audit_retention: Duration,
    /// `ACCESS_RULES` and the SIGHUP that re-reads it (watched from `build` on, so that a
    /// signal sent once the server is built is never the default's "terminate").
    rules_reload: Option<(std::path::PathBuf, tokio::signal::unix::Signal)>,
}

/// Where this server is reachable.
struct Addresses {
    /// Its own loopback URL (the demo's WeChat client talks to the simulator there).
    #[cfg_attr(not(feature = "demo"), allow(dead_code))]
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
        let wechat = Arc::new(if !demo && postgres { wechat.share_tokens(pool.clone()) } else { wechat });
        let store = Arc::new(SqlTicketStore::new(pool.clone()));
        // Sessions are read through a cache; on PostgreSQL it serves only while the
        // listener that hears other instances' revocations is connected.
        let session_cache = Arc::new(SessionCache::new(Duration::from_secs(config.sessions.cache_secs), !postgres));
        let user_cache = Arc::new(crate::server::users::UserCache::new(!postgres));
        // Several instances on one PostgreSQL database wake each other's long-polls and
        // drop each other's revoked sessions.
        let pg_listener = postgres.then(|| {
            (
                database_url.clone(),
                crate::server::changes::Listeners {
                    tickets: store.notifier(),
                    sessions: session_cache.clone(),
                    users: user_cache.clone(),
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
        let state = State {
            leptos,
            db: pool.clone(),
            tickets: Arc::new(tickets),
            // On PostgreSQL the fleet shares one pool.
            codes: Arc::new({
                let pool = CodePool::new(
                    wechat.clone(),
                    usize::try_from(config.wechat.qr_pool_size).unwrap_or(0),
                    postgres.then(|| pool.clone()),
                    clock.clone(),
                );
                match config.wechat.qr_mode {
                    QrMode::Wxacode => pool,
                    QrMode::Link => pool.links_under(addresses.public_url.clone()),
                }
            }),
            open_links: OpenLinks::new(config.wechat.open_link, wechat.clone(), clock.clone()),
            mailer: Arc::new(crate::server::mail::Mailer::from_config(&config.mail, demo).map_err(StartupError::Config)?),
            wechat,
            sessions: SqlSessionStore::new(pool.clone(), session_cache),
            users: SqlUserStore::new(pool.clone(), user_cache),
            audit: crate::server::audit::Audit::new(pool.clone()),
            clock,
            site: Arc::new(Site {
                secure,
                cookie_name: crate::server::session::cookie_name(secure),
                forward_auth_cookie: config.idp.cookie_domain.as_ref().map(|_| crate::server::session::forward_auth_cookie_name(secure)),
                cookie_domain: config.idp.cookie_domain.clone(),
                public_url: addresses.public_url,
                host,
                demo,
                longpoll: Duration::from_secs(config.tickets.longpoll_secs),
                session_absolute: config.sessions.absolute().map_err(config_err)?,
                session_life,
                trusted_proxies: config.trusted_proxies.clone(),
                forward_auth_domains: config.idp.forward_auth_domains.clone(),
                strict_return: config.idp.forward_auth_strict_return.unwrap_or(secure),
                metrics_token: config.metrics_token.clone().filter(|t| !t.is_empty()),
                signup: config.idp.signup.unwrap_or(if demo { Signup::Open } else { Signup::Approval }),
                number_match: config.tickets.number_match,
                qr_verify_file: match &config.wechat.qr_verify_file {
                    Some(path) => {
                        let (name, body) = crate::server::config::verify_file(path).map_err(config_err)?;
                        Some((name, body.into()))
                    }
                    None => None,
                },
            }),
            limits: Arc::new(config.limits.build(postgres.then(|| pool.clone()))),
            oidc: None,
            rules: Arc::new(std::sync::RwLock::new(Arc::new(load_rules(config)?))),
        };
        let state = AppState::new(State { oidc: oidc_provider(config, &state).await?, ..state });
        crate::server::people::announce_setup_link(&state).await?;
        warn_about_unknown_users(&state).await?;
        if !postgres {
            let moved = state.sessions.digest_legacy_ids().await?;
            if moved > 0 {
                tracing::info!(sessions = moved, "sessions now stored under a digest of their id");
            }
        }
        let router = http::router::router(state.clone(), simulator, config.idp.cookie_domain.clone());
        Ok(Application {
            listener: tcp,
            pg_listener,
            router,
            state,
            purge_interval: Duration::from_secs(config.tickets.purge_interval_secs),
            purge_grace: config.tickets.purge_grace().map_err(config_err)?,
            audit_retention: days(config.sessions.audit_retention_days),
            rules_reload: match &config.idp.access_rules {
                Some(path) => {
                    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).map_err(StartupError::Signal)?;
                    Some((path.clone(), hup))
                }
                None => None,
            },
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
        let purge = tokio::spawn(crate::server::maintenance::run(
            self.state.clone(),
            crate::server::maintenance::Schedule {
                every: self.purge_interval,
                ticket_grace: self.purge_grace,
                audit_retention: self.audit_retention,
            },
        ));
        let changes = self.pg_listener.map(|(url, to)| tokio::spawn(crate::server::changes::listen(url, to)));
        let reload = self.rules_reload.map(|(path, mut hup)| {
            let state = self.state.clone();
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    reload_rules(&state, &path);
                }
            })
        });
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
        if let Some(r) = reload {
            r.abort();
        }
        if let Some(c) = changes {
            c.abort();
        }
        served
    }
}

/// How long a shutdown waits for requests in flight.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(10);

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
async fn oidc_provider(config: &Config, state: &State) -> Result<Option<Arc<crate::server::oidc::Provider>>, StartupError> {
    use crate::server::oidc::{Provider, clients::Clients, keys::KeySeal, keys::SigningKeys, store::OidcStore};
    let Some(path) = &config.idp.oidc_clients else { return Ok(None) };
    let clients = Clients::load(path).map_err(StartupError::Config)?;
    let mut keys = SigningKeys::new(state.db.clone());
    match &config.idp.oidc_key_file {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| StartupError::Config(format!("OIDC_KEY_FILE {}: {e}", path.display())))?;
            keys = keys.sealed_with(KeySeal::from_file_bytes(&bytes).map_err(StartupError::Config)?);
            keys.seal_plaintext().await?;
        }
        None if !state.site.demo => {
            tracing::warn!("OIDC_KEY_FILE is not set: the ID-token signing keys are stored in the database as plaintext (docs/deploy.md)")
        }
        None => {}
    }
    let rotate = days(config.idp.oidc_key_rotate_days);
    let hint_max_age = state.site.session_absolute;
    keys.ensure(state.clock.now(), rotate).await?;
    keys.retire(state.clock.now(), hint_max_age).await?;
    tracing::info!(clients = clients.len(), "OpenID Connect provider on");
    Ok(Some(Arc::new(Provider {
        clients,
        keys,
        store: OidcStore::new(state.db.clone()),
        pairwise_key: Provider::server_secret(&state.db, "oidc_pairwise").await?,
        issuer: state.site.public_url.clone(),
        rotate,
        hint_max_age,
    })))
}

/// The forward-auth rules `ACCESS_RULES` names (none: any active user everywhere).
pub fn load_rules(config: &Config) -> Result<crate::server::access::Rules, StartupError> {
    match &config.idp.access_rules {
        Some(path) => crate::server::access::Rules::load(path).map_err(StartupError::Config),
        None => Ok(crate::server::access::Rules::default()),
    }
}

/// A `user:ID` in a rule that nobody has yet is a warning, not an error: the person may
/// come later.
async fn warn_about_unknown_users(state: &AppState) -> Result<(), StartupError> {
    let rules = state.rules();
    let mut ids: Vec<crate::domain::UserId> = rules.hosts.iter().flat_map(|r| r.policy.user_ids()).collect();
    if let Some(p) = &state.oidc {
        ids.extend(p.clients.iter().flat_map(|c| c.allow.user_ids()));
    }
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        if state.users.get(id).await?.is_none() {
            tracing::warn!(user = %id, "an access rule names user:{id}, whom nobody is yet");
        }
    }
    Ok(())
}

/// Re-reads the access rules at `path` (SIGHUP): the new ones replace the old whole; a
/// file with a mistake is logged and the old rules stay. Long-polls and sessions are not
/// touched.
pub fn reload_rules(state: &AppState, path: &std::path::Path) -> bool {
    match crate::server::access::Rules::load(path) {
        Ok(rules) => {
            tracing::info!(hosts = rules.hosts.len(), "access rules re-read");
            *state.rules.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rules);
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "access rules NOT re-read: the previous rules stay in force");
            false
        }
    }
}

/// What each OIDC client and forward-auth host admits, one line each (`scanlogin
/// check-config`); the first mistake in either file as the error.
pub fn describe_access(config: &Config) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    if let Some(path) = &config.idp.oidc_clients {
        let clients = crate::server::oidc::clients::Clients::load(path)?;
        let mut all: Vec<_> = clients.iter().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        for c in all {
            lines.push(format!("client {} ({}): {}", c.id, c.name, c.allow.describe()));
        }
    }
    let rules = load_rules(config).map_err(|e| e.to_string())?;
    for r in &rules.hosts {
        lines.push(format!("host {} and below: {}", r.host, r.policy.describe()));
    }
    lines.push(format!("any other host: {}", rules.default.describe()));
    Ok(lines)
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
) -> Result<(WechatClient, Option<http::router::DemoSimulator>), StartupError> {
    let (config, simulator) = match credentials {
        Some(c) => (args.client(args.api_base.as_str().trim_end_matches('/').to_string(), c.appid, c.secret), None),
        None => demo_wechat(args, at)?,
    };
    Ok((WechatClient::new(config, clock)?, simulator))
}

/// Demo mode: the simulator, and the client's settings pointing at it.
#[cfg(feature = "demo")]
fn demo_wechat(args: &WechatArgs, at: &Addresses) -> Result<(crate::server::wechat::WechatConfig, Option<Arc<Simulator>>), StartupError> {
    let appid = "wxdemo0000000000".to_string();
    let secret = tokens::random_token(24);
    let sim = Simulator::new(SimConfig {
        appid: appid.clone(),
        secret: secret.clone(),
        public_url: at.public_url.clone(),
        released_pages: vec![args.mp_page.clone()],
    });
    Ok((args.client(format!("{}/_wechat", at.self_url), appid, SecretString::from(secret)), Some(sim)))
}

/// A build without the simulator has no demo mode: it needs WeChat's credentials.
#[cfg(not(feature = "demo"))]
fn demo_wechat(
    _args: &WechatArgs,
    _at: &Addresses,
) -> Result<(crate::server::wechat::WechatConfig, Option<http::router::DemoSimulator>), StartupError> {
    Err(StartupError::Config(
        "this build has no demo mode (built without the `demo` feature): set WECHAT_APPID and WECHAT_SECRET (or WECHAT_SECRET_FILE)".into(),
    ))
}

/// A setting in days as a span.
fn days(n: u64) -> Duration {
    Duration::from_secs(n.saturating_mul(86_400))
}
