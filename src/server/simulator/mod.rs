//! The embedded WeChat API simulator (demo mode only), mounted at `/_wechat`.
//!
//! Written from docs/wechat-api.md, apart from the client in `server::wechat`: it
//! shares no types or parsers with it, so a misreading of the API in one shows up as a
//! failure in the other. Besides the WeChat endpoints it serves a simulated
//! phone (`/phone`), `wx.login()` (`/sim/wx-login`) and test hooks: fault injection
//! (`/sim/faults`) and per-endpoint call counters (`/sim/counters`).

// Handler helpers return the WeChat-style error answer itself as their `Err`.
#![allow(clippy::result_large_err)]

mod api;
mod hooks;
mod images;
mod phone;
pub mod standalone;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hooks::Fault;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// The simulated mini program.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The only appid it knows.
    pub appid: String,
    /// That app's secret.
    pub secret: String,
    /// The public URL of this server, for the links inside the codes.
    pub public_url: String,
    /// Pages that exist in the "released" version.
    pub released_pages: Vec<String>,
}

const TOKEN_LIFE: i64 = 7200;
const OVERLAP: i64 = 300;
const CODE_LIFE: i64 = 300;
const WXACODE_CAP: u64 = 100_000;

struct Grant {
    user: String,
    unionid: bool,
    issued: i64,
    used: bool,
}

#[derive(Default)]
struct SimState {
    /// token → expiry (epoch s); both endpoints' tokens are valid independently.
    tokens: HashMap<String, i64>,
    latest_plain: Option<String>,
    latest_stable: Option<String>,
    grants: HashMap<String, Grant>,
    faults: HashMap<String, VecDeque<Fault>>,
    counters: BTreeMap<String, u64>,
    wxacodes_made: u64,
    /// Openids that signed in to the mini program (code2Session): the content check knows
    /// only these, as WeChat's wants the person to have used the mini program.
    seen_openids: std::collections::HashSet<String>,
    /// URL Links made: id → (page, query, expiry in epoch s).
    links: HashMap<String, (String, String, i64)>,
    /// Links made in the current second and day: (second or day, count).
    links_this_second: (i64, u32),
    links_today: (i64, u64),
}

pub struct Simulator {
    cfg: SimConfig,
    state: Mutex<SimState>,
}

/// Demo WeChat users offered on the simulated phone: (key, display name, has unionid).
pub const DEMO_USERS: [(&str, &str, bool); 3] = [("zhangsan", "张三", true), ("lisi", "李四", false), ("wangwu", "王五", true)];

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn random_string(prefix: &str) -> String {
    use rand::RngCore as _;
    let mut b = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("{prefix}{}", crate::server::tokens::hex(&b))
}

/// A stable, opaque id derived from the user key (28 characters, like WeChat's).
fn derived_id(kind: &str, appid: &str, user: &str) -> String {
    let digest = Sha256::digest(format!("{kind}:{appid}:{user}").as_bytes());
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let body: String = digest.iter().take(27).map(|b| ALPHABET[(*b as usize) % 64] as char).collect();
    format!("o{body}")
}

fn errcode(code: i64, msg: &str) -> Response {
    // Real WeChat answers errors with HTTP 200 and varying content types.
    let body = json!({ "errcode": code, "errmsg": format!("{msg} rid: {}", &random_string("")[..16]) });
    ([(header::CONTENT_TYPE, "application/json; charset=UTF-8")], body.to_string()).into_response()
}

fn json_ok(value: Value, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], value.to_string()).into_response()
}

impl Simulator {
    /// A simulator for one mini program.
    pub fn new(cfg: SimConfig) -> Arc<Self> {
        Arc::new(Simulator { cfg, state: Mutex::new(SimState::default()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type Sim = State<Arc<Simulator>>;

/// The simulator's POSTs (test hooks, `wx.login`) refuse what another site made a
/// browser send, as the API does.
async fn same_site_posts(State(public_url): State<String>, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if req.method() == axum::http::Method::POST
        && let Err(e) = crate::server::http::api::check_same_site(req.headers(), &public_url)
    {
        return crate::server::error::error_response(&e, req.headers());
    }
    next.run(req).await
}

/// The simulator's routes (relative to `/_wechat`).
pub fn router<S>(sim: Arc<Simulator>) -> axum::Router<S> {
    axum::Router::new()
        .route("/cgi-bin/token", get(api::token))
        .route("/cgi-bin/stable_token", post(api::stable_token))
        .route("/wxa/getwxacodeunlimit", post(api::getwxacodeunlimit))
        .route("/wxa/getwxacode", post(api::getwxacode))
        .route("/sns/jscode2session", get(api::jscode2session))
        .route("/wxa/msg_sec_check", post(api::msg_sec_check))
        .route("/wxa/generate_urllink", post(api::generate_urllink))
        .route("/sim/urllink/{id}", get(api::open_urllink))
        .route("/sim/wx-login", post(hooks::wx_login))
        .route("/sim/faults", post(hooks::add_fault))
        .route("/sim/counters", get(hooks::counters))
        .route("/sim/expire-tokens", post(hooks::expire_tokens))
        .route("/sim/reset", post(hooks::reset))
        .route("/sim/users", get(hooks::users))
        .route("/phone", get(phone::page))
        .route("/phone.js", get(phone::script))
        .route("/phone.css", get(phone::style))
        .layer(axum::middleware::from_fn_with_state(sim.cfg.public_url.clone(), same_site_posts))
        .with_state(sim)
}
