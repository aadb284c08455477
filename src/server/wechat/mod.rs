//! The WeChat API client: real HTTP (reqwest) against `WECHAT_API_BASE`, which is
//! `https://api.weixin.qq.com` in production and the embedded simulator in demo mode.

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
    /// How many times a `-1` (system busy) answer is retried.
    pub busy_retries: u32,
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

/// The client. Cheap to share behind an `Arc`.
pub struct WechatClient {
    http: reqwest::Client,
    cfg: WechatConfig,
    tokens: TokenCache,
}

impl WechatClient {
    /// Builds a client; the token cache refreshes 240 s before expiry.
    pub fn new(cfg: WechatConfig, clock: Arc<dyn Clock>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("scanlogin/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(WechatClient { http, cfg, tokens: TokenCache::new(clock, 240) })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Vec<u8>, WechatError> {
        // `without_url`: URLs carry the appsecret or the access token in their query.
        let res = req.send().await.map_err(|e| WechatError::Transport(e.without_url().to_string()))?;
        let status = res.status();
        if !status.is_success() {
            return Err(WechatError::Http(status.as_u16()));
        }
        if res.content_length().is_some_and(|n| n as usize > MAX_BODY) {
            return Err(WechatError::Malformed("answer too large".into()));
        }
        let body = res.bytes().await.map_err(|e| WechatError::Transport(e.without_url().to_string()))?;
        if body.len() > MAX_BODY {
            return Err(WechatError::Malformed("answer too large".into()));
        }
        Ok(body.to_vec())
    }

    /// Runs `call`, retrying `-1` (system busy) with exponential backoff, a bounded
    /// number of times.
    async fn retry_busy<T, F, Fut>(&self, call: F) -> Result<T, WechatError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, WechatError>>,
    {
        let mut delay = self.cfg.busy_backoff;
        let mut attempt = 0;
        loop {
            match call().await {
                Err(e) if e.errcode() == Some(-1) && attempt < self.cfg.busy_retries => {
                    tracing::warn!(attempt, "wechat busy (-1), retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
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
        let bytes = self.send(self.http.post(format!("{}/cgi-bin/stable_token", self.cfg.base)).json(&body)).await?;
        let answer: TokenAnswer = parse_json(&bytes)?;
        tracing::info!(expires_in = answer.expires_in, "fetched a WeChat access token");
        Ok((AccessToken::new(answer.access_token), answer.expires_in))
    }

    /// The access token (cached; one fetch at a time).
    pub async fn access_token(&self) -> Result<AccessToken, WechatError> {
        self.tokens.get_or_fetch(|| self.retry_busy(|| self.fetch_token())).await
    }

    /// Runs `call` with the access token; on 40001/40014/42001 drops that token (if it
    /// is still cached), fetches a new one and retries once.
    async fn with_token<T, F, Fut>(&self, call: F) -> Result<T, WechatError>
    where
        F: Fn(AccessToken) -> Fut,
        Fut: Future<Output = Result<T, WechatError>>,
    {
        let token = self.access_token().await?;
        match call(token.clone()).await {
            Err(e) if e.is_token_error() => {
                tracing::warn!(errcode = e.errcode(), "access token refused; refetching once");
                self.tokens.invalidate(&token).await;
                call(self.access_token().await?).await
            }
            other => other,
        }
    }

    /// The mini-program code whose `scene` is `scene` (the login ticket).
    pub async fn mini_program_code(&self, scene: &str) -> Result<MiniProgramCode, WechatError> {
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
        self.retry_busy(|| {
            self.with_token(|token| {
                let req = self.http.post(&url).query(&[("access_token", token.expose())]).json(&body);
                async move {
                    let bytes = self.send(req).await?;
                    let kind = parse_image(&bytes)?;
                    Ok(MiniProgramCode { kind, bytes })
                }
            })
        })
        .await
    }

    /// Exchanges a `wx.login` code for the user's identity (`auth.code2Session`).
    pub async fn code_to_session(&self, js_code: &str) -> Result<WxIdentity, WechatError> {
        self.retry_busy(|| async {
            let req = self.http.get(format!("{}/sns/jscode2session", self.cfg.base)).query(&[
                ("appid", self.cfg.appid.as_str()),
                ("secret", self.cfg.secret.expose_secret()),
                ("js_code", js_code),
                ("grant_type", "authorization_code"),
            ]);
            parse_json::<WxIdentity>(&self.send(req).await?)
        })
        .await
    }
}
