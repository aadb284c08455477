//! The WeChat API client: real HTTP (reqwest) against `WECHAT_API_BASE`, which is
//! `https://api.weixin.qq.com` in production and the embedded simulator in demo mode.

pub mod fleet;
pub mod parse;
pub mod token;

use crate::server::clock::Clock;
use parse::{ImageKind, WechatError, parse_image, parse_json};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use token::{AccessToken, TokenCache};

/// Which endpoint makes the mini-program code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum QrApi {
    /// `/wxa/getwxacodeunlimit` with `scene` = ticket (default).
    Unlimited,
    /// `/wxa/getwxacode` with the ticket in the path's query (100,000 codes per app, ever).
    Wxacode,
}

/// What the login page's QR holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum QrMode {
    /// A mini-program code from WeChat (`WECHAT_QR_API` says which endpoint).
    Wxacode,
    /// A plain QR of `PUBLIC_URL/q/<ticket>`, drawn here with no WeChat call
    /// (扫普通链接二维码打开小程序: WeChat's scanner opens the mini program with `options.q`).
    Link,
}

/// Everything the client needs.
#[derive(Clone, Debug)]
pub struct WechatConfig {
    /// API base URL without a trailing slash.
    pub base: String,
    /// The mini program's appid.
    pub appid: String,
    /// The appsecret (redacted in `Debug`).
    pub secret: SecretString,
    /// The login page of the mini program (`pages/login/index`).
    pub page: String,
    /// `release`, `trial` or `develop`.
    pub env_version: String,
    /// Whether WeChat checks that `page` exists in the released version.
    pub check_path: bool,
    /// Which QR endpoint to use.
    pub qr_api: QrApi,
    /// Per-request timeout.
    pub timeout: Duration,
    /// First backoff after `-1`, doubled each retry.
    pub busy_backoff: Duration,
}

/// A mini-program code image.
#[derive(Clone, Debug)]
pub struct MiniProgramCode {
    /// PNG or JPEG, as sniffed from the bytes.
    pub kind: ImageKind,
    pub bytes: Vec<u8>,
}

impl MiniProgramCode {
    /// A `data:` URL whose type matches the bytes.
    pub fn data_url(&self) -> String {
        use base64::Engine as _;
        format!("data:{};base64,{}", self.kind.mime(), base64::engine::general_purpose::STANDARD.encode(&self.bytes))
    }
}

/// `msgSecCheck`'s answer (v2).
#[derive(serde::Deserialize)]
struct SecCheck {
    result: Option<SecResult>,
}

#[derive(serde::Deserialize)]
struct SecResult {
    suggest: String,
}

/// `generate_urllink`'s answer.
#[derive(serde::Deserialize)]
struct UrlLinkAnswer {
    url_link: String,
}

/// Who a `wx.login` code belongs to. The `session_key` WeChat also sends is dropped
/// while parsing: nothing here needs it, so it is never stored, logged or forwarded.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct WxIdentity {
    /// The user's id in this mini program.
    pub openid: String,
    /// The user's id across the Open Platform account, when bound.
    #[serde(default)]
    pub unionid: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

/// The largest body we accept from WeChat (a code image is tens of KB).
const MAX_BODY: usize = 2 * 1024 * 1024;

/// The most requests to WeChat one call of ours makes, token fetch, `-1` retries and
/// the token refetch included: a QR with a fresh token that is refused once costs 4
/// (token, QR, token, QR). With the per-request timeout this bounds every call's time.
pub const REQUEST_BUDGET: u32 = 4;

/// A token is refreshed this long before it expires, in memory and in the fleet's store.
const TOKEN_MARGIN_SECS: u64 = 240;

/// The client. Cheap to share behind an `Arc`.
pub struct WechatClient {
    http: reqwest::Client,
    cfg: WechatConfig,
    tokens: TokenCache,
    /// The token shared with the other instances (PostgreSQL, real mode).
    fleet: Option<fleet::FleetTokens>,
    clock: Arc<dyn Clock>,
}

impl WechatClient {
    /// Builds a client; the token cache refreshes 240 s before expiry.
    pub fn new(cfg: WechatConfig, clock: Arc<dyn Clock>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("scanlogin/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(WechatClient { http, cfg, tokens: TokenCache::new(clock.clone(), TOKEN_MARGIN_SECS), fleet: None, clock })
    }

    /// Shares the access token with the other instances on `pool` (real mode only: in
    /// demo mode each instance has a simulator, and tokens, of its own).
    pub fn share_tokens(mut self, db: crate::server::db::Db) -> Self {
        self.fleet = Some(fleet::FleetTokens::new(db, self.cfg.appid.clone(), self.clock.clone(), TOKEN_MARGIN_SECS));
        self
    }

    /// Sends one request and reads its answer, stopping at [`MAX_BODY`]: an answer
    /// that grows past it is refused without being held whole.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Vec<u8>, WechatError> {
        let too_large = || WechatError::Malformed("answer too large".into());
        // `without_url`: URLs carry the appsecret or the access token in their query.
        let transport = |e: reqwest::Error| WechatError::Transport(e.without_url().to_string());
        let mut res = req.send().await.map_err(transport)?;
        let status = res.status();
        if !status.is_success() {
            return Err(WechatError::Http(status.as_u16()));
        }
        let declared = res.content_length();
        if declared.is_some_and(|n| n > MAX_BODY as u64) {
            return Err(too_large());
        }
        // Room for the whole answer at once when its length is known (a code is kilobytes).
        let mut body = Vec::with_capacity(declared.map_or(0, |n| n as usize));
        while let Some(chunk) = res.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Runs `call`, retrying `-1` (system busy) with exponential backoff while the
    /// call's request budget lasts. Each request spends one.
    async fn spend<T, F, Fut>(&self, budget: &mut u32, call: F) -> Result<T, WechatError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, WechatError>>,
    {
        let mut delay = self.cfg.busy_backoff;
        loop {
            if *budget == 0 {
                return Err(WechatError::Transport("request budget spent".into()));
            }
            *budget -= 1;
            match call().await {
                Err(e) if e.errcode() == Some(-1) && *budget > 0 => {
                    tracing::warn!(left = *budget, "wechat busy (-1), retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => return other,
            }
        }
    }

    async fn fetch_token(&self) -> Result<(AccessToken, u64), WechatError> {
        let body = serde_json::json!({
            "grant_type": "client_credential",
            "appid": self.cfg.appid,
            "secret": self.cfg.secret.expose_secret(),
            "force_refresh": false,
        });
        let answer: TokenAnswer = crate::server::metrics::wechat_call("stable_token", async {
            parse_json(&self.send(self.http.post(format!("{}/cgi-bin/stable_token", self.cfg.base)).json(&body)).await?)
        })
        .await?;
        tracing::info!(expires_in = answer.expires_in, "fetched a WeChat access token");
        Ok((AccessToken::new(answer.access_token), answer.expires_in))
    }

    /// The access token: cached, one fetch at a time; a fetch spends from `budget`.
    async fn access_token(&self, budget: &mut u32) -> Result<AccessToken, WechatError> {
        self.tokens
            .get_or_fetch(|| async {
                match &self.fleet {
                    Some(fleet) => fleet.get_or_fetch(|| self.spend(budget, || self.fetch_token())).await,
                    None => self.spend(budget, || self.fetch_token()).await,
                }
            })
            .await
    }

    /// The mini-program code whose `scene` is `scene` (the login ticket).
    ///
    /// At most [`REQUEST_BUDGET`] requests, whatever happens: `-1` is retried with
    /// backoff, and a refused token (40001/40014/42001) is dropped (if still cached) and
    /// fetched again once, all from the same budget.
    pub async fn mini_program_code(&self, scene: &str) -> Result<MiniProgramCode, WechatError> {
        crate::server::metrics::wechat_call("mini_program_code", self.draw_code(scene)).await
    }

    async fn draw_code(&self, scene: &str) -> Result<MiniProgramCode, WechatError> {
        let (url, body) = match self.cfg.qr_api {
            QrApi::Unlimited => (
                format!("{}/wxa/getwxacodeunlimit", self.cfg.base),
                serde_json::json!({
                    "scene": scene,
                    "page": self.cfg.page,
                    "check_path": self.cfg.check_path,
                    "env_version": self.cfg.env_version,
                    "width": 430,
                }),
            ),
            QrApi::Wxacode => (
                format!("{}/wxa/getwxacode", self.cfg.base),
                serde_json::json!({ "path": format!("{}?scene={scene}", self.cfg.page), "width": 430 }),
            ),
        };
        self.with_token(|token| {
            let req = self.http.post(&url).query(&[("access_token", token.expose())]).json(&body);
            async move {
                let bytes = self.send(req).await?;
                let kind = parse_image(&bytes)?;
                Ok(MiniProgramCode { kind, bytes })
            }
        })
        .await
    }

    /// Runs `call` with the access token, within one budget of [`REQUEST_BUDGET`]
    /// requests: `-1` is retried with backoff, and a refused token (40001/40014/42001) is
    /// dropped (if still cached, here and in the fleet's store) and fetched again once.
    async fn with_token<T, F, Fut>(&self, call: F) -> Result<T, WechatError>
    where
        F: Fn(AccessToken) -> Fut,
        Fut: Future<Output = Result<T, WechatError>>,
    {
        let mut budget = REQUEST_BUDGET;
        let mut token = self.access_token(&mut budget).await?;
        let mut refetched = false;
        loop {
            let answer = self.spend(&mut budget, || call(token.clone())).await;
            match answer {
                Err(e) if e.is_token_error() && !refetched && budget > 0 => {
                    tracing::warn!(errcode = e.errcode(), "access token refused; refetching once");
                    // The fleet's copy goes first: dropped here first, a concurrent call on
                    // this instance would find the cache empty, read the refused token back
                    // from the shared store, and be refused again with its one refetch spent.
                    if let Some(fleet) = &self.fleet {
                        fleet.invalidate(&token).await;
                    }
                    self.tokens.invalidate(&token).await;
                    refetched = true;
                    token = self.access_token(&mut budget).await?;
                }
                other => return other,
            }
        }
    }

    /// Whether WeChat lets `content` stand as the nickname of `openid` (`msgSecCheck` v2,
    /// scene 1: profile). `risky` and `review` are refused: a nickname shown to site owners
    /// and other apps is not worth a manual review, and the person can pick another.
    pub async fn nickname_allowed(&self, openid: &str, content: &str) -> Result<bool, WechatError> {
        let url = format!("{}/wxa/msg_sec_check", self.cfg.base);
        let body = serde_json::json!({ "content": content, "version": 2, "scene": 1, "openid": openid });
        let call = self.with_token(|token| {
            let req = self.http.post(&url).query(&[("access_token", token.expose())]).json(&body);
            async move { parse_json::<SecCheck>(&self.send(req).await?) }
        });
        let verdict = crate::server::metrics::wechat_call("msg_sec_check", call).await?;
        Ok(verdict.result.is_some_and(|r| r.suggest == "pass"))
    }

    /// A URL Link (`wxa/generate_urllink`) that opens the login page with `query` from a
    /// phone's browser, for `days` days (WeChat allows 1–30). The answer goes into pages as
    /// a link, so anything but an http(s) URL is refused as malformed.
    pub async fn url_link(&self, query: &str, days: u32) -> Result<String, WechatError> {
        let url = format!("{}/wxa/generate_urllink", self.cfg.base);
        let body = serde_json::json!({
            "path": self.cfg.page,
            "query": query,
            "env_version": self.cfg.env_version,
            "expire_type": 1,
            "expire_interval": days,
        });
        let call = self.with_token(|token| {
            let req = self.http.post(&url).query(&[("access_token", token.expose())]).json(&body);
            async move { parse_json::<UrlLinkAnswer>(&self.send(req).await?) }
        });
        let answer = crate::server::metrics::wechat_call("generate_urllink", call).await?;
        match url::Url::parse(&answer.url_link) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => Ok(answer.url_link),
            _ => Err(WechatError::Malformed("url_link is not an http(s) URL".into())),
        }
    }

    /// WeChat's plain URL Scheme for the login page with `query` (no API call; the page
    /// must be declared for plain-scheme opening in the mini program's admin console).
    pub fn scheme_link(&self, query: &str) -> String {
        use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
        // Each value is escaped but for RFC 3986's unreserved characters; the page path
        // keeps its slashes too, as WeChat's examples write it.
        const VALUE: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
        const PATH: &percent_encoding::AsciiSet = &VALUE.remove(b'/');
        let enc = |v: &str, set| utf8_percent_encode(v, set).to_string();
        format!(
            "weixin://dl/business/?appid={}&path={}&query={}&env_version={}",
            enc(&self.cfg.appid, VALUE),
            enc(&self.cfg.page, PATH),
            enc(query, VALUE),
            enc(&self.cfg.env_version, VALUE)
        )
    }

    /// Exchanges a `wx.login` code for the user's identity (`auth.code2Session`); `-1`
    /// is retried within the same budget.
    pub async fn code_to_session(&self, js_code: &str) -> Result<WxIdentity, WechatError> {
        let mut budget = REQUEST_BUDGET;
        let call = self.spend(&mut budget, || async {
            let req = self.http.get(format!("{}/sns/jscode2session", self.cfg.base)).query(&[
                ("appid", self.cfg.appid.as_str()),
                ("secret", self.cfg.secret.expose_secret()),
                ("js_code", js_code),
                ("grant_type", "authorization_code"),
            ]);
            parse_json::<WxIdentity>(&self.send(req).await?)
        });
        crate::server::metrics::wechat_call("code2session", call).await
    }
}
