//! Test hooks of the simulator (demo mode only): `wx.login()` for the simulated phone,
//! fault injection, call counters, expiring tokens on demand.

use super::images::{image_response, png_bytes, render};
use super::{CODE_LIFE, DEMO_USERS, Grant, Sim, Simulator, errcode, json_ok, now, random_string};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::time::Duration;

/// The endpoints faults can be injected into.
const ENDPOINTS: [&str; 7] =
    ["token", "stable_token", "getwxacodeunlimit", "getwxacode", "jscode2session", "msg_sec_check", "generate_urllink"];

/// An injected fault: what the next calls of one endpoint answer.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// HTTP 200 with `{"errcode": N}`.
    Errcode { errcode: i64 },
    /// This HTTP status with a plain-text body.
    HttpStatus { status: u16 },
    /// Bytes that are neither JSON nor an image.
    Garbage,
    /// Waits, then answers normally.
    Delay { ms: u64 },
    /// A PNG where JSON was expected.
    Image,
    /// `{"errcode":0}` JSON where an image was expected.
    Json,
}

#[derive(serde::Deserialize)]
pub(super) struct FaultRequest {
    endpoint: String,
    #[serde(flatten)]
    fault: Fault,
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

impl Simulator {
    /// Counts a call and returns the fault to apply to it, if any.
    pub(super) fn enter(&self, endpoint: &str) -> Option<Fault> {
        let mut s = self.lock();
        *s.counters.entry(endpoint.to_string()).or_insert(0) += 1;
        s.faults.get_mut(endpoint).and_then(|q| q.pop_front())
    }

    /// The answer a fault gives instead of the real one; `None` lets the call proceed
    /// (no fault, or a delay that has passed).
    pub(super) async fn fault_response(&self, fault: Option<Fault>) -> Option<Response> {
        match fault? {
            Fault::Errcode { errcode: code } => Some(errcode(code, "injected error")),
            Fault::HttpStatus { status } => {
                Some((StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY), "<html>upstream error</html>").into_response())
            }
            Fault::Garbage => Some(([(header::CONTENT_TYPE, "text/html")], &b"\x00\x13<html>garbage\xff"[..]).into_response()),
            Fault::Delay { ms } => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                None
            }
            Fault::Image => Some(image_response(png_bytes(&render("not json", 280), false))),
            Fault::Json => Some(json_ok(json!({"errcode": 0, "errmsg": "ok"}), "application/json")),
        }
    }
}

#[derive(serde::Deserialize)]
pub(super) struct WxLogin {
    user: String,
    #[serde(default)]
    unionid: Option<bool>,
}

/// `wx.login()`: a single-use code for `user`, valid 5 minutes.
pub(super) async fn wx_login(State(sim): Sim, Json(req): Json<WxLogin>) -> Response {
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

pub(super) async fn add_fault(State(sim): Sim, Json(req): Json<FaultRequest>) -> Response {
    if !ENDPOINTS.contains(&req.endpoint.as_str()) || req.count == 0 || req.count > 1000 {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "unknown endpoint or bad count", "endpoints": ENDPOINTS}))).into_response();
    }
    let mut s = sim.lock();
    let q = s.faults.entry(req.endpoint).or_default();
    for _ in 0..req.count {
        q.push_back(req.fault.clone());
    }
    Json(json!({})).into_response()
}

/// Ends every access token now (their next use answers 42001).
pub(super) async fn expire_tokens(State(sim): Sim) -> Response {
    let mut s = sim.lock();
    let t = now();
    for exp in s.tokens.values_mut() {
        *exp = t;
    }
    Json(json!({})).into_response()
}

pub(super) async fn counters(State(sim): Sim) -> Response {
    Json(json!(sim.lock().counters)).into_response()
}

pub(super) async fn reset(State(sim): Sim) -> Response {
    let mut s = sim.lock();
    s.faults.clear();
    s.counters.clear();
    Json(json!({})).into_response()
}

pub(super) async fn users() -> Response {
    let list: Vec<Value> = DEMO_USERS.iter().map(|(k, n, u)| json!({"user": k, "name": n, "unionid": u})).collect();
    Json(json!(list)).into_response()
}
