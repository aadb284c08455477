//! Configuration: every setting is a command-line flag and an environment variable,
//! read once at start-up (`scanlogin --help` lists them all).

use crate::server::wechat::QrApi;
use clap::{ArgAction, Parser};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The command line / environment.
#[derive(Parser, Clone, Debug)]
#[command(name = "scanlogin", version, about = "Sign in to a website by scanning a WeChat mini-program code.\n\nWithout WECHAT_APPID/WECHAT_SECRET it runs in demo mode with an embedded WeChat simulator.")]
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
    /// The mini program's appid. With a secret, switches off demo mode.
    #[arg(long, env = "WECHAT_APPID")]
    pub wechat_appid: Option<String>,
    /// The mini program's appsecret (prefer WECHAT_SECRET_FILE).
    #[arg(long, env = "WECHAT_SECRET", hide_env_values = true)]
    pub wechat_secret: Option<String>,
    /// A file holding the appsecret.
    #[arg(long, env = "WECHAT_SECRET_FILE")]
    pub wechat_secret_file: Option<PathBuf>,
    /// WeChat API base URL (ignored in demo mode, which uses the embedded simulator).
    #[arg(long, env = "WECHAT_API_BASE", default_value = "https://api.weixin.qq.com")]
    pub wechat_api_base: url::Url,
    /// The mini program's login page (no leading slash).
    #[arg(long, env = "WECHAT_MP_PAGE", default_value = "pages/login/index")]
    pub wechat_mp_page: String,
    /// Which version of the mini program the code opens.
    #[arg(long, env = "WECHAT_ENV_VERSION", default_value = "release", value_parser = ["release", "trial", "develop"])]
    pub wechat_env_version: String,
    /// Whether WeChat checks that the page is published (set false for trial/develop).
    #[arg(long, env = "WECHAT_CHECK_PATH", default_value_t = true, action = ArgAction::Set)]
    pub wechat_check_path: bool,
    /// QR endpoint: unlimited (getwxacodeunlimit) or wxacode (getwxacode, capped at 100,000 codes).
    #[arg(long, env = "WECHAT_QR_API", value_enum, default_value = "unlimited")]
    pub wechat_qr_api: QrApi,
    /// Timeout of each WeChat call, seconds.
    #[arg(long, env = "WECHAT_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub wechat_timeout_secs: u64,
    /// A waiting ticket (QR) expires after this many seconds.
    #[arg(long, env = "TICKET_TTL_SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub ticket_ttl_secs: u64,
    /// A scanned or confirmed ticket expires this many seconds after creation.
    #[arg(long, env = "TICKET_SCANNED_TTL_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=7200))]
    pub ticket_scanned_ttl_secs: u64,
    /// Longest wait of one status long-poll, seconds.
    #[arg(long, env = "LONGPOLL_SECS", default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub longpoll_secs: u64,
    /// Open long-polls allowed per browser.
    #[arg(long, env = "LONGPOLLS_PER_BROWSER", default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub longpolls_per_browser: u64,
    /// A session idle this long ends, seconds (7 days).
    #[arg(long, env = "SESSION_IDLE_SECS", default_value_t = 604_800, value_parser = clap::value_parser!(u64).range(60..))]
    pub session_idle_secs: u64,
    /// A login ends this long after it happened whatever the activity, seconds (30 days).
    #[arg(long, env = "SESSION_ABSOLUTE_SECS", default_value_t = 2_592_000, value_parser = clap::value_parser!(u64).range(60..))]
    pub session_absolute_secs: u64,
    /// Login tickets one client IP may create per minute (0 = no limit).
    #[arg(long, env = "RATE_TICKETS_PER_IP", default_value_t = 30)]
    pub rate_tickets_per_ip: u32,
    /// Login tickets one browser may create per minute (0 = no limit).
    #[arg(long, env = "RATE_TICKETS_PER_BROWSER", default_value_t = 10)]
    pub rate_tickets_per_browser: u32,
    /// Mini-program calls one client IP may make per minute (0 = no limit).
    #[arg(long, env = "RATE_PHONE_PER_IP", default_value_t = 120)]
    pub rate_phone_per_ip: u32,
    /// Mini-program calls per ticket and minute (0 = no limit).
    #[arg(long, env = "RATE_PHONE_PER_TICKET", default_value_t = 20)]
    pub rate_phone_per_ticket: u32,
    /// Tickets one browser may have alive at once (0 = no limit).
    #[arg(long, env = "LIVE_TICKETS_PER_BROWSER", default_value_t = 10)]
    pub live_tickets_per_browser: u32,
    /// Reverse proxies whose X-Forwarded-For is believed (comma-separated IPs). Empty: the socket's peer is the client.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Finished tickets are purged this long after they finished, seconds.
    #[arg(long, env = "PURGE_GRACE_SECS", default_value_t = 600)]
    pub purge_grace_secs: u64,
    /// How often the purge task runs, seconds.
    #[arg(long, env = "PURGE_INTERVAL_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub purge_interval_secs: u64,
}

/// Real WeChat credentials.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// appid.
    pub appid: String,
    /// appsecret (redacted in `Debug`).
    pub secret: SecretString,
}

impl Config {
    /// Parses flags and environment; on error clap prints it and exits with code 2.
    pub fn from_env() -> Self {
        Config::parse()
    }

    /// Real credentials, `None` in demo mode, or an error for half a configuration.
    pub fn credentials(&self) -> Result<Option<Credentials>, String> {
        let secret = match (&self.wechat_secret, &self.wechat_secret_file) {
            (Some(_), Some(_)) => return Err("set WECHAT_SECRET or WECHAT_SECRET_FILE, not both".into()),
            (Some(s), None) => Some(s.trim().to_string()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read WECHAT_SECRET_FILE {}: {e}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        match (self.wechat_appid.as_deref().map(str::trim), secret) {
            (None, None) => Ok(None),
            (Some(appid), Some(secret)) if !appid.is_empty() && !secret.is_empty() => {
                Ok(Some(Credentials { appid: appid.to_string(), secret: SecretString::from(secret) }))
            }
            (Some(_), None) => Err("WECHAT_APPID is set but WECHAT_SECRET / WECHAT_SECRET_FILE is not".into()),
            (None, Some(_)) => Err("WECHAT_SECRET is set but WECHAT_APPID is not".into()),
            _ => Err("WECHAT_APPID and the secret must not be empty".into()),
        }
    }

    /// Checks what clap cannot: page shape, URL schemes.
    pub fn validate(&self) -> Result<(), String> {
        let page = &self.wechat_mp_page;
        if page.is_empty() || page.starts_with('/') || page.contains('?') {
            return Err(format!("WECHAT_MP_PAGE {page:?}: a page path like pages/login/index, no leading slash or query"));
        }
        if let Some(u) = &self.public_url
            && (!matches!(u.scheme(), "http" | "https") || u.host_str().is_none())
        {
            return Err(format!("PUBLIC_URL {u}: must be an http(s) URL with a host"));
        }
        if !matches!(self.wechat_api_base.scheme(), "http" | "https") {
            return Err("WECHAT_API_BASE must be an http(s) URL".into());
        }
        if self.ticket_scanned_ttl_secs < self.ticket_ttl_secs {
            return Err("TICKET_SCANNED_TTL_SECS must not be shorter than TICKET_TTL_SECS".into());
        }
        self.credentials().map(|_| ())
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
    fn demo_by_default_and_half_credentials_refused() {
        let c = parse(&[]).unwrap();
        assert!(c.credentials().unwrap().is_none() || std::env::var("WECHAT_APPID").is_ok());
        assert!(parse(&["--wechat-appid", "wx1"]).unwrap().validate().is_err());
        let c = parse(&["--wechat-appid", "wx1", "--wechat-secret", "s"]).unwrap();
        let creds = c.credentials().unwrap().unwrap();
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
    }
}
