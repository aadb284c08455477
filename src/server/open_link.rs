//! The link that opens the mini program's login page on a ticket from the phone's own
//! browser (`open_link` in the ticket's answer): the same-phone login.
//!
//! `WECHAT_OPEN_LINK=urllink` (the default) uses a WeChat URL Link. Rather than one link
//! per ticket, one link is made with no query and kept until 3 days before its 30 are
//! up, and each ticket appends itself as `?cq=scene%3D<ticket>` (WeChat passes `cq`'s
//! keys to the page like a query: the page reads `options.scene`, as from a code). Why:
//! WeChat allows 100 links a second and 500,000 a day per mini program, and this server
//! issues tickets faster than that (docs/benchmarks.md: hundreds a second on two cores)
//! — a link per ticket would make WeChat's caps the login's, and add a WeChat round trip
//! (the slowest step) to every ticket. One link costs one call per instance a month.
//! `scheme` writes WeChat's plain URL Scheme (no call); `off` answers no link.
//!
//! Making the link never holds a ticket up for long or fails it: while none is held the
//! ticket waits at most [`FIRST_WAIT`] for the attempt, then goes without (`open_link`
//! null; the QR works as ever); a failure waits before the next attempt, as long as its
//! errcode warrants ([`after_failure`]), and is logged with what to do about it.

use crate::domain::{TicketId, UnixMillis};
use crate::server::clock::Clock;
use crate::server::wechat::WechatClient;
use crate::server::wechat::parse::WechatError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the login page's 「在微信中打开」 link is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OpenLinkMode {
    /// A WeChat URL Link (`wxa/generate_urllink`), shared, with the ticket in `cq`.
    Urllink,
    /// WeChat's plain URL Scheme, `weixin://dl/business/?…` (no API call).
    Scheme,
    /// No link: the QR only.
    Off,
}

/// A URL Link's life, days (WeChat's longest).
const LINK_DAYS: u32 = 30;
/// A link is replaced this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(3 * 86_400);
/// How long a ticket waits for a link while none is held.
pub const FIRST_WAIT: Duration = Duration::from_millis(300);

/// What a failed attempt means, for the log, and how long to wait before the next.
/// `failures` counts the failures in a row (1 for the first).
pub fn after_failure(e: &WechatError, failures: u32) -> (&'static str, Duration) {
    const HOUR: Duration = Duration::from_secs(3600);
    match e.errcode() {
        Some(40165) => ("WeChat refused the page (40165): WECHAT_MP_PAGE must be a page of the published mini program", HOUR),
        Some(40212) => ("WeChat refused the link's query (40212)", HOUR),
        Some(85401) => ("WeChat refused the link's expiry (85401): it must be 1 minute to 30 days away", HOUR),
        Some(85402) => ("WeChat refused WECHAT_ENV_VERSION for a link (85402)", HOUR),
        Some(44990) => ("over WeChat's 100 links a second (44990)", Duration::from_secs(1)),
        Some(44993) => ("WeChat's daily cap of links is reached (44993)", HOUR),
        Some(85406) => ("WeChat's daily cap of link opens is reached (85406)", HOUR),
        Some(40002) => {
            ("only a published mini program of an organisation may make URL Links (40002): set WECHAT_OPEN_LINK=scheme or off", HOUR)
        }
        _ => ("WeChat did not make a link", Duration::from_secs(1 << failures.clamp(1, 8)).min(Duration::from_secs(300))),
    }
}

/// `base` with the ticket appended as `cq` (≤ 256 characters; a ticket is ≤ 32).
fn with_ticket(base: &str, ticket: &TicketId) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}cq=scene%3D{ticket}")
}

#[derive(Default)]
struct Held {
    /// The shared link and when it expires.
    link: Option<(String, UnixMillis)>,
    /// No attempt before this, after a failure.
    retry_at: Option<UnixMillis>,
    failures: u32,
}

impl Held {
    /// The link, while it has more than a minute left.
    fn usable(&self, now: UnixMillis) -> Option<String> {
        self.link.as_ref().filter(|(_, exp)| now.until(*exp) > Duration::from_secs(60)).map(|(l, _)| l.clone())
    }

    /// Whether a new link should be made now.
    fn due(&self, now: UnixMillis) -> bool {
        let renew = self.link.as_ref().is_none_or(|(_, exp)| now.until(*exp) < RENEW_BEFORE);
        renew && self.retry_at.is_none_or(|at| at <= now)
    }
}

/// The links, per instance.
pub struct OpenLinks {
    mode: OpenLinkMode,
    wechat: Arc<WechatClient>,
    clock: Arc<dyn Clock>,
    held: Mutex<Held>,
    /// One attempt at a time.
    making: tokio::sync::Mutex<()>,
}

impl OpenLinks {
    pub fn new(mode: OpenLinkMode, wechat: Arc<WechatClient>, clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(OpenLinks { mode, wechat, clock, held: Mutex::default(), making: tokio::sync::Mutex::new(()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The link that opens the login page on `ticket`, if there is one now.
    pub async fn for_ticket(self: &Arc<Self>, ticket: &TicketId) -> Option<String> {
        match self.mode {
            OpenLinkMode::Off => None,
            OpenLinkMode::Scheme => Some(self.wechat.scheme_link(&format!("scene={ticket}"))),
            OpenLinkMode::Urllink => self.shared().await.map(|base| with_ticket(&base, ticket)),
        }
    }

    /// The shared URL Link, making (or renewing) it in the background when due.
    async fn shared(self: &Arc<Self>) -> Option<String> {
        let now = self.clock.now();
        let (link, due) = {
            let held = self.lock();
            (held.usable(now), held.due(now))
        };
        if !due {
            return link;
        }
        let this = self.clone();
        let attempt = tokio::spawn(async move { this.make().await });
        if link.is_some() {
            return link;
        }
        let _ = tokio::time::timeout(FIRST_WAIT, attempt).await;
        self.lock().usable(self.clock.now())
    }

    /// One attempt, unless another is under way or the link is no longer due.
    async fn make(&self) {
        let Ok(_one) = self.making.try_lock() else { return };
        if !self.lock().due(self.clock.now()) {
            return;
        }
        let answer = self.wechat.url_link("", LINK_DAYS).await;
        let now = self.clock.now();
        let mut held = self.lock();
        match answer {
            Ok(url) => {
                tracing::info!(days = LINK_DAYS, "made the URL Link that opens the mini program from a phone's browser");
                held.link = Some((url, now.plus(Duration::from_secs(u64::from(LINK_DAYS) * 86_400))));
                held.retry_at = None;
                held.failures = 0;
            }
            Err(e) => {
                held.failures += 1;
                let (what, wait) = after_failure(&e, held.failures);
                tracing::warn!(error = %e, ?wait, "{what}; login pages offer the QR only meanwhile");
                held.retry_at = Some(now.plus(wait));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ticket_rides_in_cq() {
        let t = TicketId::try_from("AbC_12-x".to_string()).unwrap();
        assert_eq!(with_ticket("https://wxaurl.cn/kQ9aZ", &t), "https://wxaurl.cn/kQ9aZ?cq=scene%3DAbC_12-x");
        assert_eq!(with_ticket("http://h/l?x=1", &t), "http://h/l?x=1&cq=scene%3DAbC_12-x");
    }

    #[test]
    fn each_errcode_waits_as_long_as_it_warrants() {
        let api = |errcode| WechatError::Api { errcode, errmsg: String::new() };
        assert_eq!(after_failure(&api(44990), 5).1, Duration::from_secs(1), "a busy second passes");
        for code in [40165, 40212, 85401, 85402, 44993, 85406, 40002] {
            let (what, wait) = after_failure(&api(code), 1);
            assert_eq!(wait, Duration::from_secs(3600), "{code}");
            assert!(what.contains(&code.to_string()), "{code}: {what}");
        }
        let down = WechatError::Transport("refused".into());
        assert_eq!(after_failure(&down, 1).1, Duration::from_secs(2));
        assert_eq!(after_failure(&down, 30).1, Duration::from_secs(256));
    }

    #[test]
    fn a_link_is_renewed_three_days_ahead_and_not_retried_early() {
        let now = UnixMillis(1_000_000_000);
        let mut held = Held::default();
        assert!(held.due(now));
        held.link = Some(("l".into(), now.plus(Duration::from_secs(4 * 86_400))));
        assert!(!held.due(now));
        assert_eq!(held.usable(now).as_deref(), Some("l"));
        held.link = Some(("l".into(), now.plus(Duration::from_secs(2 * 86_400))));
        assert!(held.due(now), "renewed while still usable");
        held.retry_at = Some(now.plus(Duration::from_secs(1)));
        assert!(!held.due(now));
        held.link = Some(("l".into(), now.plus(Duration::from_secs(30))));
        assert_eq!(held.usable(now), None, "a link about to expire is not handed out");
    }
}
