//! The WeChat endpoints the client calls, answered as docs/wechat-api.md describes:
//! access tokens, mini-program codes, code2Session.

use super::images::code_image;
use super::{CODE_LIFE, OVERLAP, Sim, Simulator, TOKEN_LIFE, WXACODE_CAP, derived_id, errcode, json_ok, now, random_string};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::HashMap;

impl Simulator {
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

fn scene_ok(scene: &str) -> bool {
    const EXTRA: &str = "!#$&'()*+,/:;=?@-._~";
    scene.chars().all(|c| c.is_ascii_alphanumeric() || EXTRA.contains(c))
}

pub(super) async fn token(State(sim): Sim, Query(q): Query<HashMap<String, String>>) -> Response {
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

pub(super) async fn stable_token(State(sim): Sim, body: Bytes) -> Response {
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

pub(super) async fn getwxacodeunlimit(
    State(sim): Sim,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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

pub(super) async fn getwxacode(State(sim): Sim, Query(q): Query<HashMap<String, String>>, headers: HeaderMap, body: Bytes) -> Response {
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

pub(super) async fn jscode2session(State(sim): Sim, Query(q): Query<HashMap<String, String>>) -> Response {
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
    let openid = derived_id("openid", &sim.cfg.appid, &grant.user);
    let mut answer = json!({
        "openid": openid,
        "session_key": random_string("SIMSESSIONKEY_"),
    });
    if grant.unionid {
        answer["unionid"] = json!(derived_id("unionid", "open-platform", &grant.user));
    }
    s.seen_openids.insert(openid);
    // Seen in the wild: code2Session answers JSON as text/plain.
    json_ok(answer, "text/plain")
}

/// The word the simulated content check refuses (`risky`), so demos and tests can try a
/// refused nickname; one that only needs a person's look (`review`) is [`REVIEWED_WORD`].
pub const REFUSED_WORD: &str = "违禁";
/// The word the simulated content check sends to review.
pub const REVIEWED_WORD: &str = "待审";

/// `POST /wxa/msg_sec_check` (v2): pass, or `risky` for [`REFUSED_WORD`], `review` for
/// [`REVIEWED_WORD`]; an openid that never signed in to the mini program is 40003.
pub(super) async fn msg_sec_check(State(sim): Sim, Query(q): Query<HashMap<String, String>>, body: Bytes) -> Response {
    if let Some(r) = sim.fault_response(sim.enter("msg_sec_check")).await {
        return r;
    }
    if let Err(r) = sim.check_token(&q) {
        return r;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return errcode(47001, "data format error");
    };
    let (Some(content), Some(openid)) = (v["content"].as_str(), v["openid"].as_str()) else {
        return errcode(47001, "data format error");
    };
    if v["version"].as_i64() != Some(2) || !(1..=4).contains(&v["scene"].as_i64().unwrap_or(0)) {
        return errcode(40003, "invalid version or scene");
    }
    if !sim.lock().seen_openids.contains(openid) {
        return errcode(40003, "invalid openid");
    }
    let (suggest, label) = if content.contains(REFUSED_WORD) {
        ("risky", 20001)
    } else if content.contains(REVIEWED_WORD) {
        ("review", 20001)
    } else {
        ("pass", 100)
    };
    json_ok(
        json!({ "errcode": 0, "errmsg": "ok", "result": { "suggest": suggest, "label": label }, "detail": [] }),
        "application/json; charset=UTF-8",
    )
}

/// WeChat's caps on URL Links made per mini program: a second's and a day's.
const LINKS_PER_SECOND: u32 = 100;
const LINKS_PER_DAY: u64 = 500_000;
/// A link's longest life (no permanent links any more).
const LINK_MAX_DAYS: i64 = 30;

/// `POST /wxa/generate_urllink`: a link that opens `path?query` from a phone's browser,
/// with WeChat's checks and errcodes (40165 path, 40212 query, 85401 expiry, 85402
/// env_version, 44990 a second's cap, 44993 a day's cap).
pub(super) async fn generate_urllink(
    State(sim): Sim,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = sim.fault_response(sim.enter("generate_urllink")).await {
        return r;
    }
    let v = match wxa_body(&sim, &headers, &body, &q) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let path = v["path"].as_str().unwrap_or("");
    if !path.is_empty() && !page_ok(&sim, path, true) {
        return errcode(40165, "invalid weapp pagepath");
    }
    let query = v["query"].as_str().unwrap_or("");
    if query.len() > 1024 || !scene_ok(&query.replace('%', "")) {
        return errcode(40212, "invalid query");
    }
    if !["release", "trial", "develop"].contains(&v["env_version"].as_str().unwrap_or("release")) {
        return errcode(85402, "invalid env_version");
    }
    let t = now();
    let expires = match v["expire_type"].as_i64().unwrap_or(0) {
        1 => match v["expire_interval"].as_i64() {
            Some(days) if (1..=LINK_MAX_DAYS).contains(&days) => t + days * 86_400,
            _ => return errcode(85401, "time limit between 1min and 30days"),
        },
        _ => match v["expire_time"].as_i64() {
            Some(at) if at >= t + 60 && at <= t + LINK_MAX_DAYS * 86_400 => at,
            None => t + LINK_MAX_DAYS * 86_400,
            _ => return errcode(85401, "time limit between 1min and 30days"),
        },
    };
    let id = random_string("")[..16].to_string();
    {
        let mut s = sim.lock();
        if s.links_this_second.0 != t {
            s.links_this_second = (t, 0);
        }
        if s.links_this_second.1 >= LINKS_PER_SECOND {
            return errcode(44990, "reach max api minute frequence limit");
        }
        if s.links_today.0 != t / 86_400 {
            s.links_today = (t / 86_400, 0);
        }
        if s.links_today.1 >= LINKS_PER_DAY {
            return errcode(44993, "reach max api daily quota limit");
        }
        s.links_this_second.1 += 1;
        s.links_today.1 += 1;
        s.links.retain(|_, (_, _, exp)| *exp > t);
        s.links.insert(id.clone(), (path.to_string(), query.to_string(), expires));
    }
    let url_link = format!("{}/_wechat/sim/urllink/{id}", sim.cfg.public_url);
    json_ok(json!({ "errcode": 0, "errmsg": "ok", "url_link": url_link }), "application/json; charset=UTF-8")
}

/// `GET /_wechat/sim/urllink/{id}`: what opening a URL Link on a phone does, in the
/// simulator's terms: the mini program opens on the link's page, with its query, and
/// the keys of an appended `cq` as plain query keys too (what WeChat is reported to do;
/// docs/wechat-api.md) — here, the simulated phone page with those parameters.
pub(super) async fn open_urllink(
    State(sim): Sim,
    axum::extract::Path(id): axum::extract::Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    use axum::response::IntoResponse as _;
    let link = sim.lock().links.get(&id).cloned();
    let gone = |status: axum::http::StatusCode, text: &str| {
        (status, axum::response::Html(format!("<!DOCTYPE html><meta charset=\"utf-8\"><p>{text}</p>"))).into_response()
    };
    let Some((_, query, expires)) = link else {
        return gone(axum::http::StatusCode::NOT_FOUND, "小程序链接不存在");
    };
    if expires <= now() {
        return gone(axum::http::StatusCode::GONE, "小程序链接已过期");
    }
    let mut target = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        target.append_pair(&k, &v);
    }
    if let Some(cq) = q.get("cq").filter(|c| c.len() <= 256) {
        for (k, v) in url::form_urlencoded::parse(cq.as_bytes()) {
            target.append_pair(&k, &v);
        }
    }
    let mut res = axum::http::StatusCode::FOUND.into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("/_wechat/phone?{}", target.finish())) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}
