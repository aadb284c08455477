//! The embedded WeChat API simulator (demo mode only), mounted at `/_wechat`.
//!
//! Written from docs/wechat-api.md, apart from the client in `server::wechat`: it
//! shares no types or parsers with it, so a misreading of the API in one shows up as a
//! failure in the other. Besides the three WeChat endpoints it serves a simulated
//! phone (`/phone`), `wx.login()` (`/sim/wx-login`) and test hooks: fault injection
//! (`/sim/faults`) and per-endpoint call counters (`/sim/counters`).

// Handler helpers return the WeChat-style error answer itself as their `Err`.
#![allow(clippy::result_large_err)]

mod phone;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// An injected fault: what the next calls of one endpoint answer.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// HTTP 200 with `{"errcode": N}`.
    Errcode {
        /// The errcode.
        errcode: i64,
    },
    /// This HTTP status with a plain-text body.
    HttpStatus {
        /// The status.
        status: u16,
    },
    /// Bytes that are neither JSON nor an image.
    Garbage,
    /// Waits, then answers normally.
    Delay {
        /// How long.
        ms: u64,
    },
    /// A PNG where JSON was expected.
    Image,
    /// `{"errcode":0}` JSON where an image was expected.
    Json,
}

#[derive(serde::Deserialize)]
struct FaultRequest {
    endpoint: String,
    #[serde(flatten)]
    fault: Fault,
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

/// Everything but RFC 3986's unreserved characters is escaped in a query value.
const QUERY_VALUE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

const ENDPOINTS: [&str; 5] = ["token", "stable_token", "getwxacodeunlimit", "getwxacode", "jscode2session"];
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
}

/// The simulator.
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
    format!("{prefix}{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>())
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

fn scene_ok(scene: &str) -> bool {
    const EXTRA: &str = "!#$&'()*+,/:;=?@-._~";
    scene.chars().all(|c| c.is_ascii_alphanumeric() || EXTRA.contains(c))
}

impl Simulator {
    /// A simulator for one mini program.
    pub fn new(cfg: SimConfig) -> Arc<Self> {
        Arc::new(Simulator { cfg, state: Mutex::new(SimState::default()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a call and returns the fault to apply to it, if any.
    fn enter(&self, endpoint: &str) -> Option<Fault> {
        let mut s = self.lock();
        *s.counters.entry(endpoint.to_string()).or_insert(0) += 1;
        s.faults.get_mut(endpoint).and_then(|q| q.pop_front())
    }

    /// Applies a fault: `Ok(response)` ends the call, `Err(())` lets it proceed.
    async fn fault_response(&self, fault: Option<Fault>) -> Option<Response> {
        match fault? {
            Fault::Errcode { errcode: code } => Some(errcode(code, "injected error")),
            Fault::HttpStatus { status } => Some(
                (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY), "<html>upstream error</html>")
                    .into_response(),
            ),
            Fault::Garbage => Some(([(header::CONTENT_TYPE, "text/html")], &b"\x00\x13<html>garbage\xff"[..]).into_response()),
            Fault::Delay { ms } => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                None
            }
            Fault::Image => Some(image_response(png_bytes(&render("not json", 280), false))),
            Fault::Json => Some(json_ok(json!({"errcode": 0, "errmsg": "ok"}), "application/json")),
        }
    }

    fn check_app(&self, appid: Option<&str>, secret: Option<&str>) -> Result<(), Response> {
        match appid {
            None | Some("") => Err(errcode(41002, "appid missing")),
            Some(a) if a != self.cfg.appid => Err(errcode(40013, "invalid appid")),
            _ if secret != Some(self.cfg.secret.as_str()) => Err(errcode(40125, "invalid appsecret")),
            _ => Ok(()),
        }
    }

    fn check_token(&self, query: &HashMap<String, String>) -> Result<(), Response> {
        let Some(token) = query.get("access_token").filter(|t| !t.is_empty()) else {
            return Err(errcode(41001, "access_token missing"));
        };
        match self.lock().tokens.get(token) {
            None => Err(errcode(40001, "invalid credential, access_token is invalid or not latest")),
            Some(&exp) if exp <= now() => Err(errcode(42001, "access_token expired")),
            Some(_) => Ok(()),
        }
    }

    /// Issues a new token; the previous one of the same kind keeps working for 5 minutes.
    fn issue_token(&self, stable: bool) -> (String, i64) {
        let mut s = self.lock();
        let t = now();
        let previous = if stable { s.latest_stable.clone() } else { s.latest_plain.clone() };
        if let Some(old) = previous
            && let Some(exp) = s.tokens.get_mut(&old)
        {
            *exp = (*exp).min(t + OVERLAP);
        }
        let token = random_string("SIMTOKEN_");
        s.tokens.insert(token.clone(), t + TOKEN_LIFE);
        // Keep expired tokens a while so their use answers 42001 (expired), not 40001.
        s.tokens.retain(|_, exp| *exp > t - TOKEN_LIFE);
        if stable {
            s.latest_stable = Some(token.clone());
        } else {
            s.latest_plain = Some(token.clone());
        }
        (token, TOKEN_LIFE)
    }
}

type Sim = State<Arc<Simulator>>;

async fn token(State(sim): Sim, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(r) = sim.fault_response(sim.enter("token")).await {
        return r;
    }
    if q.get("grant_type").map(String::as_str) != Some("client_credential") {
        return errcode(40002, "invalid grant_type");
    }
    if let Err(r) = sim.check_app(q.get("appid").map(String::as_str), q.get("secret").map(String::as_str)) {
        return r;
    }
    let (token, expires_in) = sim.issue_token(false);
    json_ok(json!({"access_token": token, "expires_in": expires_in}), "application/json; charset=UTF-8")
}

async fn stable_token(State(sim): Sim, body: Bytes) -> Response {
    if let Some(r) = sim.fault_response(sim.enter("stable_token")).await {
        return r;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return errcode(47001, "data format error");
    };
    if v["grant_type"].as_str() != Some("client_credential") {
        return errcode(40002, "invalid grant_type");
    }
    if let Err(r) = sim.check_app(v["appid"].as_str(), v["secret"].as_str()) {
        return r;
    }
    let force = v["force_refresh"].as_bool().unwrap_or(false);
    let current = {
        let s = sim.lock();
        s.latest_stable.as_ref().and_then(|t| s.tokens.get(t).map(|exp| (t.clone(), *exp)))
    };
    let (token, expires_in) = match current {
        // Same token while more than 5 minutes remain.
        Some((t, exp)) if !force && exp - now() > OVERLAP => (t, exp - now()),
        _ => sim.issue_token(true),
    };
    json_ok(json!({"access_token": token, "expires_in": expires_in}), "application/json; charset=UTF-8")
}

/// Reads a JSON body; WeChat rejects form bodies and tokens in the body.
fn wxa_body(sim: &Simulator, headers: &HeaderMap, body: &[u8], query: &HashMap<String, String>) -> Result<Value, Response> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        let form = headers.get(header::CONTENT_TYPE).is_some_and(|c| c.as_bytes().starts_with(b"application/x-www-form"));
        return Err(errcode(47001, if form { "data format error: form body" } else { "data format error" }));
    };
    if !v.is_object() {
        return Err(errcode(47001, "data format error"));
    }
    sim.check_token(query)?;
    Ok(v)
}

fn page_ok(sim: &Simulator, page: &str, check: bool) -> bool {
    !page.starts_with('/') && !page.contains('?') && (!check || sim.cfg.released_pages.iter().any(|p| p == page))
}

async fn getwxacodeunlimit(State(sim): Sim, Query(q): Query<HashMap<String, String>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = sim.fault_response(sim.enter("getwxacodeunlimit")).await {
        return r;
    }
    let v = match wxa_body(&sim, &headers, &body, &q) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let scene = v["scene"].as_str().unwrap_or("");
    if scene.is_empty() || !scene_ok(scene) {
        return errcode(40129, "invalid scene");
    }
    if scene.chars().count() > 32 {
        return errcode(40169, "invalid length for scene, or the data is not json string");
    }
    let env = v["env_version"].as_str().unwrap_or("release");
    if !["release", "trial", "develop"].contains(&env) {
        return errcode(40097, "invalid args: env_version");
    }
    let page = v["page"].as_str().unwrap_or("");
    let check = v["check_path"].as_bool().unwrap_or(true) && env == "release";
    if !page.is_empty() && !page_ok(&sim, page, check) {
        return errcode(41030, "invalid page rid");
    }
    code_image(&sim, &v, "scene", scene)
}

/// The code image as WeChat sends it: a real QR holding a link to the simulated phone
/// (`/_wechat/phone?<param>=<value>`), JPEG, or PNG with transparency for `is_hyaline`.
fn code_image(sim: &Simulator, body: &Value, param: &str, value: &str) -> Response {
    let width = body["width"].as_u64().unwrap_or(430).clamp(280, 1280) as u32;
    let link = format!(
        "{}/_wechat/phone?{param}={}",
        sim.cfg.public_url,
        percent_encoding::utf8_percent_encode(value, QUERY_VALUE)
    );
    let img = render(&link, width);
    image_response(if body["is_hyaline"].as_bool().unwrap_or(false) { png_bytes(&img, true) } else { jpeg_bytes(&img) })
}

async fn getwxacode(State(sim): Sim, Query(q): Query<HashMap<String, String>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = sim.fault_response(sim.enter("getwxacode")).await {
        return r;
    }
    let v = match wxa_body(&sim, &headers, &body, &q) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let path = v["path"].as_str().unwrap_or("");
    if path.is_empty() || path.len() > 1024 {
        return errcode(40159, "invalid length for path, or the data is not json string");
    }
    if !page_ok(&sim, path.split('?').next().unwrap_or(""), true) {
        return errcode(41030, "invalid page rid");
    }
    {
        let mut s = sim.lock();
        if s.wxacodes_made >= WXACODE_CAP {
            return errcode(45029, "max limit of wxacode");
        }
        s.wxacodes_made += 1;
    }
    code_image(&sim, &v, "path", path)
}

async fn jscode2session(State(sim): Sim, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(r) = sim.fault_response(sim.enter("jscode2session")).await {
        return r;
    }
    if let Err(r) = sim.check_app(q.get("appid").map(String::as_str), q.get("secret").map(String::as_str)) {
        return r;
    }
    if q.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return errcode(40002, "invalid grant_type");
    }
    let Some(code) = q.get("js_code").filter(|c| !c.is_empty()) else {
        return errcode(41008, "missing code");
    };
    let mut s = sim.lock();
    let Some(grant) = s.grants.get_mut(code) else {
        return errcode(40029, "invalid code");
    };
    if grant.used {
        return errcode(40163, "code been used");
    }
    if now() - grant.issued > CODE_LIFE {
        return errcode(40029, "invalid code");
    }
    grant.used = true;
    let mut answer = json!({
        "openid": derived_id("openid", &sim.cfg.appid, &grant.user),
        "session_key": random_string("SIMSESSIONKEY_"),
    });
    if grant.unionid {
        answer["unionid"] = json!(derived_id("unionid", "open-platform", &grant.user));
    }
    // Seen in the wild: code2Session answers JSON as text/plain.
    json_ok(answer, "text/plain")
}

#[derive(serde::Deserialize)]
struct WxLogin {
    user: String,
    #[serde(default)]
    unionid: Option<bool>,
}

/// `wx.login()`: a single-use code for `user`, valid 5 minutes.
async fn wx_login(State(sim): Sim, Json(req): Json<WxLogin>) -> Response {
    if req.user.is_empty() || req.user.len() > 64 {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "user must be 1-64 bytes"}))).into_response();
    }
    let unionid = req.unionid.unwrap_or_else(|| DEMO_USERS.iter().find(|u| u.0 == req.user).is_none_or(|u| u.2));
    let code = random_string("SIMCODE_");
    let mut s = sim.lock();
    let t = now();
    s.grants.retain(|_, g| t - g.issued <= CODE_LIFE);
    s.grants.insert(code.clone(), Grant { user: req.user, unionid, issued: t, used: false });
    Json(json!({ "code": code })).into_response()
}

async fn add_fault(State(sim): Sim, Json(req): Json<FaultRequest>) -> Response {
    if !ENDPOINTS.contains(&req.endpoint.as_str()) || req.count == 0 || req.count > 1000 {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "unknown endpoint or bad count", "endpoints": ENDPOINTS})))
            .into_response();
    }
    let mut s = sim.lock();
    let q = s.faults.entry(req.endpoint).or_default();
    for _ in 0..req.count {
        q.push_back(req.fault.clone());
    }
    Json(json!({})).into_response()
}

/// Ends every access token now (their next use answers 42001).
async fn expire_tokens(State(sim): Sim) -> Response {
    let mut s = sim.lock();
    let t = now();
    for exp in s.tokens.values_mut() {
        *exp = t;
    }
    Json(json!({})).into_response()
}

async fn counters(State(sim): Sim) -> Response {
    Json(json!(sim.lock().counters)).into_response()
}

async fn reset(State(sim): Sim) -> Response {
    let mut s = sim.lock();
    s.faults.clear();
    s.counters.clear();
    Json(json!({})).into_response()
}

async fn users() -> Response {
    let list: Vec<Value> = DEMO_USERS.iter().map(|(k, n, u)| json!({"user": k, "name": n, "unionid": u})).collect();
    Json(json!(list)).into_response()
}

/// The simulator's routes (relative to `/_wechat`).
pub fn router<S>(sim: Arc<Simulator>) -> axum::Router<S> {
    axum::Router::new()
        .route("/cgi-bin/token", get(token))
        .route("/cgi-bin/stable_token", post(stable_token))
        .route("/wxa/getwxacodeunlimit", post(getwxacodeunlimit))
        .route("/wxa/getwxacode", post(getwxacode))
        .route("/sns/jscode2session", get(jscode2session))
        .route("/sim/wx-login", post(wx_login))
        .route("/sim/faults", post(add_fault))
        .route("/sim/counters", get(counters))
        .route("/sim/expire-tokens", post(expire_tokens))
        .route("/sim/reset", post(reset))
        .route("/sim/users", get(users))
        .route("/phone", get(phone::page))
        .route("/phone.js", get(phone::script))
        .route("/phone.css", get(phone::style))
        .with_state(sim)
}

fn render(link: &str, width: u32) -> image::GrayImage {
    match qrcode::QrCode::with_error_correction_level(link.as_bytes(), qrcode::EcLevel::M) {
        Ok(code) => code.render::<image::Luma<u8>>().quiet_zone(true).min_dimensions(width, width).build(),
        Err(_) => image::GrayImage::from_pixel(width, width, image::Luma([255])),
    }
}

fn jpeg_bytes(img: &image::GrayImage) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92).encode_image(img);
    out
}

/// PNG; with `transparent`, white becomes transparent (`is_hyaline`).
fn png_bytes(img: &image::GrayImage, transparent: bool) -> Vec<u8> {
    use image::ImageEncoder as _;
    let mut out = Vec::new();
    let enc = image::codecs::png::PngEncoder::new(&mut out);
    let _ = if transparent {
        let la: Vec<u8> = img.pixels().flat_map(|p| [p.0[0], if p.0[0] > 127 { 0 } else { 255 }]).collect();
        enc.write_image(&la, img.width(), img.height(), image::ExtendedColorType::La8)
    } else {
        enc.write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::L8)
    };
    out
}

fn image_response(bytes: Vec<u8>) -> Response {
    let kind = if bytes.starts_with(b"\x89PNG") { "image/png" } else { "image/jpeg" };
    let mut r = bytes.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}
