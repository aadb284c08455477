//! Configuration: every setting is a command-line flag and an environment variable,
//! read once at start-up (`scanlogin --help` lists them all).

use crate::server::limits::{KeyedLimit, Limits};
use crate::server::open_link::OpenLinkMode;
use crate::server::session::SessionLifetimes;
use crate::server::tickets::Lifetimes;
use crate::server::wechat::{QrApi, QrMode, WechatConfig};
use clap::{ArgAction, Args, Parser};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The command line / environment.
#[derive(Parser, Clone, Debug)]
#[command(
    name = "scanlogin",
    version,
    about = "Sign in to a website by scanning a WeChat mini-program code.\n\nWithout WECHAT_APPID/WECHAT_SECRET it runs in demo mode with an embedded WeChat simulator."
)]
pub struct Config {
    /// Address to listen on [default: LEPTOS_SITE_ADDR, else 127.0.0.1:3000]. Demo mode stays on loopback unless this is given.
    #[arg(long, env = "LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The site's public URL, e.g. https://example.com [default: http://<listen address>]. Decides the cookie's Secure flag.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<url::Url>,
    /// Database: sqlite://path or postgres://… [default: sqlite://data/scanlogin.db].
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Connections in the database pool [default: 8 for SQLite, 16 for PostgreSQL; 2–8 measured alike for SQLite, 1 a little slower, docs/benchmarks.md].
    #[arg(long = "database-max-connections", env = "DATABASE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_max_connections: Option<u32>,
    /// Reverse proxies whose X-Forwarded-For is believed (comma-separated IPs). Empty: the socket's peer is the client.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Log lines as text for people, or one JSON object per line (with the request id) for log pipelines.
    #[arg(long = "log-format", env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Serve /metrics (Prometheus) to requests bearing this token (Authorization: Bearer …); unset: no /metrics.
    #[arg(long = "metrics-token", env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    #[command(flatten)]
    pub wechat: WechatArgs,
    #[command(flatten)]
    pub tickets: TicketArgs,
    #[command(flatten)]
    pub sessions: SessionArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub idp: IdpArgs,
    #[command(flatten)]
    pub mail: MailArgs,
}

/// Mail: the verification links of email addresses.
#[derive(Args, Clone, Debug)]
pub struct MailArgs {
    /// SMTP server for verification mails: smtps://user:pass@host:465, or smtp://host:587?tls=required
    /// (unset: in demo mode mails go to the demo mailbox at /_wechat/mailbox; otherwise no email).
    #[arg(long = "smtp-url", env = "SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The sender of those mails, e.g. "scanlogin <login@example.com>" (required with SMTP_URL).
    #[arg(long = "mail-from", env = "MAIL_FROM")]
    pub mail_from: Option<String>,
}

/// Signing other sites in: OpenID Connect and forward-auth.
#[derive(Args, Clone, Debug)]
pub struct IdpArgs {
    /// A TOML file of OpenID Connect clients (read at start); unset: no OIDC provider.
    #[arg(long = "oidc-clients", env = "OIDC_CLIENTS")]
    pub oidc_clients: Option<PathBuf>,
    /// A new ID-token signing key after this many days (the old one stays in the JWKS until its tokens expire).
    #[arg(long = "oidc-key-rotate-days", env = "OIDC_KEY_ROTATE_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub oidc_key_rotate_days: u64,
    /// A file of at least 32 random bytes: the ID-token signing keys are stored encrypted with
    /// a key derived from it (AES-256-GCM); unset: stored as plaintext PEM (a warning outside demo).
    #[arg(long = "oidc-key-file", env = "OIDC_KEY_FILE")]
    pub oidc_key_file: Option<PathBuf>,
    /// Hosts forward-auth may send a browser back to after login (comma-separated; a.example.com matches example.com).
    #[arg(long = "forward-auth-domains", env = "FORWARD_AUTH_DOMAINS", value_delimiter = ',')]
    pub forward_auth_domains: Vec<String>,
    /// Forward-auth's `/auth/return` sends browsers only to https on the default port
    /// (default: when PUBLIC_URL is https); false also allows http and other ports.
    #[arg(long = "forward-auth-strict-return", env = "FORWARD_AUTH_STRICT_RETURN", action = ArgAction::Set)]
    pub forward_auth_strict_return: Option<bool>,
    /// Make the session cookie valid for this parent domain (one login for *.example.com).
    #[arg(long = "cookie-domain", env = "COOKIE_DOMAIN")]
    pub cookie_domain: Option<String>,
    /// A TOML file of forward-auth access rules: who may enter each protected host (server::access; re-read on SIGHUP). Unset: any active user, everywhere.
    #[arg(long = "access-rules", env = "ACCESS_RULES")]
    pub access_rules: Option<PathBuf>,
    /// Who becomes a user on first scan: open (anyone, active at once), approval (pending until an admin approves), invite (only through an invitation) [default: open in demo mode, approval with WeChat credentials].
    #[arg(long = "signup", env = "SIGNUP", value_enum)]
    pub signup: Option<Signup>,
}

/// The sign-up policy (`SIGNUP`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signup {
    /// A new WeChat user is active at once.
    Open,
    /// A new WeChat user waits, pending, until an admin approves them.
    Approval,
    /// A new WeChat user without an invitation is refused on the phone.
    Invite,
}

/// How to reach WeChat, and as which mini program.
#[derive(Args, Clone, Debug)]
pub struct WechatArgs {
    /// The mini program's appid. With a secret, switches off demo mode.
    #[arg(long = "wechat-appid", env = "WECHAT_APPID")]
    pub appid: Option<String>,
    /// The mini program's appsecret (prefer WECHAT_SECRET_FILE).
    #[arg(long = "wechat-secret", env = "WECHAT_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// A file holding the appsecret.
    #[arg(long = "wechat-secret-file", env = "WECHAT_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// WeChat API base URL (ignored in demo mode, which uses the embedded simulator).
    #[arg(long = "wechat-api-base", env = "WECHAT_API_BASE", default_value = "https://api.weixin.qq.com")]
    pub api_base: url::Url,
    /// The mini program's login page (no leading slash).
    #[arg(long = "wechat-mp-page", env = "WECHAT_MP_PAGE", default_value = "pages/login/index")]
    pub mp_page: String,
    /// Which version of the mini program the code opens.
    #[arg(long = "wechat-env-version", env = "WECHAT_ENV_VERSION", default_value = "release", value_parser = ["release", "trial", "develop"])]
    pub env_version: String,
    /// Whether WeChat checks that the page is published (set false for trial/develop).
    #[arg(long = "wechat-check-path", env = "WECHAT_CHECK_PATH", default_value_t = true, action = ArgAction::Set)]
    pub check_path: bool,
    /// QR endpoint: unlimited (getwxacodeunlimit) or wxacode (getwxacode, capped at 100,000 codes).
    #[arg(long = "wechat-qr-api", env = "WECHAT_QR_API", value_enum, default_value = "unlimited")]
    pub qr_api: QrApi,
    /// What the QR holds: wxacode (a mini-program code from WeChat) or link (PUBLIC_URL/q/<ticket>,
    /// drawn here; needs the domain's rule in the mini program's admin console).
    #[arg(long = "wechat-qr-mode", env = "WECHAT_QR_MODE", value_enum, default_value = "wxacode")]
    pub qr_mode: QrMode,
    /// The verification file WeChat's admin console gives for link codes, served at /<its name>.
    #[arg(long = "wechat-qr-verify-file", env = "WECHAT_QR_VERIFY_FILE")]
    pub qr_verify_file: Option<PathBuf>,
    /// The phone browser's 「在微信中打开」 link: urllink (WeChat URL Link), scheme (weixin://) or off.
    #[arg(long = "wechat-open-link", env = "WECHAT_OPEN_LINK", value_enum, default_value = "urllink")]
    pub open_link: OpenLinkMode,
    /// Mini-program codes kept ready ahead of demand, per instance (0 = make each on demand).
    #[arg(long = "qr-pool-size", env = "QR_POOL_SIZE", default_value_t = 8, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub qr_pool_size: u64,
    /// Timeout of each WeChat call, seconds.
    #[arg(long = "wechat-timeout-secs", env = "WECHAT_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub timeout_secs: u64,
}

/// How long tickets live and how they are followed.
#[derive(Args, Clone, Debug)]
pub struct TicketArgs {
    /// Number matching: the browser shows two digits once scanned and the phone must pick
    /// them from three to confirm (defeats a relayed QR; SECURITY.md says when to turn it on).
    #[arg(long = "login-number-match", env = "LOGIN_NUMBER_MATCH", default_value_t = false, action = ArgAction::Set)]
    pub number_match: bool,
    /// A waiting ticket (QR) expires after this many seconds.
    #[arg(long = "ticket-ttl-secs", env = "TICKET_TTL_SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub ttl_secs: u64,
    /// A scanned or confirmed ticket expires this many seconds after creation.
    #[arg(long = "ticket-scanned-ttl-secs", env = "TICKET_SCANNED_TTL_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=7200))]
    pub scanned_ttl_secs: u64,
    /// Longest wait of one status long-poll, seconds.
    #[arg(long = "longpoll-secs", env = "LONGPOLL_SECS", default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub longpoll_secs: u64,
    /// Open long-polls allowed per browser.
    #[arg(long = "longpolls-per-browser", env = "LONGPOLLS_PER_BROWSER", default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub longpolls_per_browser: u64,
    /// Finished tickets are purged this long after they finished, seconds.
    #[arg(long = "purge-grace-secs", env = "PURGE_GRACE_SECS", default_value_t = 600)]
    pub purge_grace_secs: u64,
    /// How often the purge task runs, seconds.
    #[arg(long = "purge-interval-secs", env = "PURGE_INTERVAL_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub purge_interval_secs: u64,
}

/// How long sign-ins last.
#[derive(Args, Clone, Debug)]
pub struct SessionArgs {
    /// A session idle this long ends, seconds (7 days).
    #[arg(long = "session-idle-secs", env = "SESSION_IDLE_SECS", default_value_t = 604_800, value_parser = clap::value_parser!(u64).range(60..))]
    pub idle_secs: u64,
    /// A login ends this long after it happened whatever the activity, seconds (30 days).
    #[arg(long = "session-absolute-secs", env = "SESSION_ABSOLUTE_SECS", default_value_t = 2_592_000, value_parser = clap::value_parser!(u64).range(60..))]
    pub absolute_secs: u64,
    /// Audit events (sign-ins, logouts, refusals, OIDC codes and tokens) are kept this many days.
    #[arg(long = "audit-retention-days", env = "AUDIT_RETENTION_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub audit_retention_days: u64,
    /// Sessions read are kept in memory this long at most, seconds (0 = off). Revocations still act at once: see docs/architecture.md.
    #[arg(long = "session-cache-secs", env = "SESSION_CACHE_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub cache_secs: u64,
}

/// Rate limits and caps.
#[derive(Args, Clone, Debug)]
pub struct LimitArgs {
    /// Login tickets one client IP may create per minute (0 = no limit).
    #[arg(long = "rate-tickets-per-ip", env = "RATE_TICKETS_PER_IP", default_value_t = 30)]
    pub tickets_per_ip: u32,
    /// Login tickets one browser may create per minute (0 = no limit).
    #[arg(long = "rate-tickets-per-browser", env = "RATE_TICKETS_PER_BROWSER", default_value_t = 10)]
    pub tickets_per_browser: u32,
    /// Mini-program calls one client IP may make per minute (0 = no limit).
    #[arg(long = "rate-phone-per-ip", env = "RATE_PHONE_PER_IP", default_value_t = 120)]
    pub phone_per_ip: u32,
    /// Mini-program calls per ticket and minute (0 = no limit).
    #[arg(long = "rate-phone-per-ticket", env = "RATE_PHONE_PER_TICKET", default_value_t = 20)]
    pub phone_per_ticket: u32,
    /// OpenID Connect authorization requests one client IP may make per minute (0 = no limit).
    #[arg(long = "rate-oidc-authorize-per-ip", env = "RATE_OIDC_AUTHORIZE_PER_IP", default_value_t = 120)]
    pub oidc_authorize_per_ip: u32,
    /// OpenID Connect token requests one client IP may make per minute (0 = no limit). A relying party's server sends all of its users' exchanges from one address: keep it well above its logins per minute.
    #[arg(long = "rate-oidc-token-per-ip", env = "RATE_OIDC_TOKEN_PER_IP", default_value_t = 600)]
    pub oidc_token_per_ip: u32,
    /// Tickets one browser may have alive at once (0 = no limit).
    #[arg(long = "live-tickets-per-browser", env = "LIVE_TICKETS_PER_BROWSER", default_value_t = 10)]
    pub live_tickets_per_browser: u32,
    /// Tickets alive at once across the service (0 = no limit); past it new ones get 503 busy.
    #[arg(long = "max-live-tickets", env = "MAX_LIVE_TICKETS", default_value_t = 10_000)]
    pub max_live_tickets: u32,
}

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// What is wrong with a configuration (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// Seconds as a span, or an error naming `what` when its milliseconds would not fit an
/// instant's (`UnixMillis`) arithmetic.
fn span(secs: u64, what: &str) -> Result<Duration, ConfigError> {
    i64::try_from(secs)
        .ok()
        .and_then(|s| s.checked_mul(1000))
        .map(|_| Duration::from_secs(secs))
        .ok_or_else(|| invalid(format!("{what} is too large")))
}

/// Real WeChat credentials.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub appid: String,
    /// The appsecret (redacted in `Debug`).
    pub secret: SecretString,
}

impl Config {
    /// Parses flags and environment; on error clap prints it and exits with code 2.
    pub fn from_env() -> Self {
        Config::parse()
    }

    /// Checks what clap cannot: page shape, URL schemes, lifetimes that fit.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(u) = &self.public_url
            && (!matches!(u.scheme(), "http" | "https") || u.host_str().is_none())
        {
            return Err(invalid(format!("PUBLIC_URL {u}: must be an http(s) URL with a host")));
        }
        self.wechat.validate()?;
        if self.metrics_token.as_ref().is_some_and(|t| !t.is_empty() && t.len() < 16) {
            return Err(invalid("METRICS_TOKEN needs at least 16 characters"));
        }
        let public_host = self.public_url.as_ref().and_then(|u| u.host_str()).map(str::to_ascii_lowercase);
        if let Some(domain) = &self.idp.cookie_domain {
            let d = domain.trim_start_matches('.').to_ascii_lowercase();
            let labels: Vec<&str> = d.split('.').collect();
            if d.parse::<std::net::IpAddr>().is_ok() || labels.len() < 2 || labels.iter().any(|l| l.is_empty()) {
                return Err(invalid(format!(
                    "COOKIE_DOMAIN {domain}: a parent domain of at least two labels (example.com), never a public suffix"
                )));
            }
            if !public_host.as_ref().is_some_and(|h| *h == d || h.ends_with(&format!(".{d}"))) {
                return Err(invalid(format!("COOKIE_DOMAIN {domain} must cover PUBLIC_URL's host")));
            }
        }
        // RFC 9700: an identity provider speaks https; plain http only for the demo.
        let https = self.public_url.as_ref().is_some_and(|u| u.scheme() == "https");
        if self.idp.oidc_clients.is_some() && !https && self.wechat.credentials()?.is_some() {
            return Err(invalid("OIDC_CLIENTS needs an https PUBLIC_URL outside demo mode"));
        }
        self.tickets.lifetimes()?;
        self.tickets.purge_grace()?;
        self.sessions.absolute()?;
        self.sessions.lifetimes(&self.tickets)?;
        Ok(())
    }
}

impl WechatArgs {
    /// Real credentials, `None` in demo mode, or an error for half a configuration.
    pub fn credentials(&self) -> Result<Option<Credentials>, ConfigError> {
        let secret = match (&self.secret, &self.secret_file) {
            (Some(_), Some(_)) => return Err(invalid("set WECHAT_SECRET or WECHAT_SECRET_FILE, not both")),
            (Some(s), None) => Some(s.trim().to_string()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| invalid(format!("cannot read WECHAT_SECRET_FILE {}: {e}", path.display())))?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        match (self.appid.as_deref().map(str::trim), secret) {
            (None, None) => Ok(None),
            (Some(appid), Some(secret)) if !appid.is_empty() && !secret.is_empty() => {
                Ok(Some(Credentials { appid: appid.to_string(), secret: SecretString::from(secret) }))
            }
            (Some(_), None) => Err(invalid("WECHAT_APPID is set but WECHAT_SECRET / WECHAT_SECRET_FILE is not")),
            (None, Some(_)) => Err(invalid("WECHAT_SECRET is set but WECHAT_APPID is not")),
            _ => Err(invalid("WECHAT_APPID and the secret must not be empty")),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let page = &self.mp_page;
        if page.is_empty() || page.starts_with('/') || page.contains('?') {
            return Err(invalid(format!("WECHAT_MP_PAGE {page:?}: a page path like pages/login/index, no leading slash or query")));
        }
        if let Some(path) = &self.qr_verify_file {
            verify_file(path)?;
        }
        if !matches!(self.api_base.scheme(), "http" | "https") {
            return Err(invalid("WECHAT_API_BASE must be an http(s) URL"));
        }
        // The appsecret travels in these requests: in real mode only https leaves the
        // machine (plain http is allowed to a loopback address, e.g. a local simulator).
        let loopback = match self.api_base.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        if self.credentials()?.is_some() && self.api_base.scheme() == "http" && !loopback {
            return Err(invalid("WECHAT_API_BASE must be https in real mode (the appsecret travels in its requests)"));
        }
        Ok(())
    }

    /// The client's configuration for talking to `base` as `appid`.
    pub fn client(&self, base: String, appid: String, secret: SecretString) -> WechatConfig {
        WechatConfig {
            base,
            appid,
            secret,
            page: self.mp_page.clone(),
            env_version: self.env_version.clone(),
            check_path: self.check_path,
            qr_api: self.qr_api,
            timeout: Duration::from_secs(self.timeout_secs),
            busy_backoff: Duration::from_millis(200),
        }
    }
}

/// The link codes' verification file: its name (served at `/<name>`) and contents. WeChat
/// names it like `a1B2c3D4e5.txt`; only such names are served, so the route can never
/// shadow a page.
pub fn verify_file(path: &std::path::Path) -> Result<(String, Vec<u8>), ConfigError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let stem = name.strip_suffix(".txt").unwrap_or("");
    if stem.is_empty() || stem.len() > 64 || !stem.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(invalid(format!("WECHAT_QR_VERIFY_FILE {name:?}: expected the .txt file WeChat's admin console gives")));
    }
    let body = std::fs::read(path).map_err(|e| invalid(format!("WECHAT_QR_VERIFY_FILE {}: {e}", path.display())))?;
    if body.len() > 4096 {
        return Err(invalid("WECHAT_QR_VERIFY_FILE: larger than 4 KiB, not a verification file"));
    }
    Ok((name.to_string(), body))
}

impl TicketArgs {
    /// The tickets' lifetimes.
    pub fn lifetimes(&self) -> Result<Lifetimes, ConfigError> {
        if self.scanned_ttl_secs < self.ttl_secs {
            return Err(invalid("TICKET_SCANNED_TTL_SECS must not be shorter than TICKET_TTL_SECS"));
        }
        Ok(Lifetimes { waiting: span(self.ttl_secs, "TICKET_TTL_SECS")?, active: span(self.scanned_ttl_secs, "TICKET_SCANNED_TTL_SECS")? })
    }

    /// How long finished tickets are kept.
    pub fn purge_grace(&self) -> Result<Duration, ConfigError> {
        span(self.purge_grace_secs, "PURGE_GRACE_SECS")
    }
}

impl SessionArgs {
    /// A login's absolute life.
    pub fn absolute(&self) -> Result<Duration, ConfigError> {
        span(self.absolute_secs, "SESSION_ABSOLUTE_SECS")
    }

    /// How long sessions live without activity: signed in, `SESSION_IDLE_SECS`;
    /// anonymous (a binding key only), its longest ticket plus the purge grace.
    pub fn lifetimes(&self, tickets: &TicketArgs) -> Result<SessionLifetimes, ConfigError> {
        let anonymous = tickets.scanned_ttl_secs.max(tickets.ttl_secs).saturating_add(tickets.purge_grace_secs);
        Ok(SessionLifetimes { anonymous: span(anonymous, "PURGE_GRACE_SECS")?, signed_in: span(self.idle_secs, "SESSION_IDLE_SECS")? })
    }
}

impl LimitArgs {
    /// The limits, counting from now: in this process, or (`shared`: PostgreSQL) in the
    /// database for the whole fleet.
    pub fn build(&self, shared: Option<crate::server::db::Db>) -> Limits {
        let limit = |per_minute: u32, name: &'static str| match &shared {
            Some(pool) => KeyedLimit::shared(per_minute, pool.clone(), name),
            None => KeyedLimit::per_minute(per_minute),
        };
        Limits {
            tickets_per_ip: limit(self.tickets_per_ip, "tickets_per_ip"),
            tickets_per_browser: limit(self.tickets_per_browser, "tickets_per_browser"),
            phone_per_ip: limit(self.phone_per_ip, "phone_per_ip"),
            phone_per_ticket: limit(self.phone_per_ticket, "phone_per_ticket"),
            oidc_authorize_per_ip: limit(self.oidc_authorize_per_ip, "oidc_authorize_per_ip"),
            oidc_token_per_ip: limit(self.oidc_token_per_ip, "oidc_token_per_ip"),
            live_tickets_per_browser: i64::from(self.live_tickets_per_browser),
            max_live_tickets: i64::from(self.max_live_tickets),
            shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        let mut all = vec!["scanlogin", "--database-url", "sqlite::memory:"];
        all.extend_from_slice(args);
        Config::try_parse_from(all)
    }

    #[test]
    fn risky_settings_are_refused() {
        let err = |args: &[&str]| parse(args).unwrap().validate().unwrap_err().to_string();
        assert!(err(&["--metrics-token", "short"]).contains("16"));
        assert!(parse(&["--metrics-token", "sixteen-chars-ok"]).unwrap().validate().is_ok());
        let site = ["--public-url", "https://login.example.com"];
        for bad in ["com", ".com", "127.0.0.1", "other.org", "a..b"] {
            let mut args = site.to_vec();
            args.extend(["--cookie-domain", bad]);
            assert!(parse(&args).unwrap().validate().is_err(), "{bad}");
        }
        let mut ok = site.to_vec();
        ok.extend(["--cookie-domain", "example.com"]);
        assert!(parse(&ok).unwrap().validate().is_ok());
        let real = ["--wechat-appid", "wx1", "--wechat-secret", "s", "--oidc-clients", "/x.toml"];
        let mut http = real.to_vec();
        http.extend(["--public-url", "http://login.example.com"]);
        assert!(err(&http).contains("https"));
        let mut https = real.to_vec();
        https.extend(["--public-url", "https://login.example.com"]);
        assert!(parse(&https).unwrap().validate().is_ok());
    }

    #[test]
    fn demo_by_default_and_half_credentials_refused() {
        let c = parse(&[]).unwrap();
        assert!(c.wechat.credentials().unwrap().is_none() || std::env::var("WECHAT_APPID").is_ok());
        assert!(parse(&["--wechat-appid", "wx1"]).unwrap().validate().is_err());
        let c = parse(&["--wechat-appid", "wx1", "--wechat-secret", "s"]).unwrap();
        let creds = c.wechat.credentials().unwrap().unwrap();
        assert_eq!(creds.appid, "wx1");
        assert!(!format!("{creds:?}").contains("\"s\""), "secret must not show in Debug");
    }

    #[test]
    fn invalid_values_are_errors() {
        assert!(parse(&["--wechat-env-version", "beta"]).is_err());
        assert!(parse(&["--longpoll-secs", "0"]).is_err());
        assert!(parse(&["--wechat-check-path", "maybe"]).is_err());
        assert_eq!(parse(&["--listen", "nope"]).unwrap_err().exit_code(), 2);
        assert!(parse(&["--wechat-mp-page", "/pages/x"]).unwrap().validate().is_err());
        assert!(parse(&["--public-url", "ftp://x"]).unwrap().validate().is_err());
        assert!(parse(&["--purge-grace-secs", "18446744073709551615"]).unwrap().validate().is_err(), "no wrap into the past");
        assert!(parse(&["--session-idle-secs", "18446744073709551615"]).unwrap().validate().is_err());
        let real = ["--wechat-appid", "wx1", "--wechat-secret", "s", "--wechat-api-base"];
        assert!(parse(&[&real[..], &["http://api.example.com"]].concat()).unwrap().validate().is_err(), "http in real mode");
        assert!(parse(&[&real[..], &["http://127.0.0.1:9"]].concat()).unwrap().validate().is_ok(), "loopback http is local");
        assert!(parse(&[&real[..], &["https://api.example.com"]].concat()).unwrap().validate().is_ok());
    }
}
