//! `/metrics` in Prometheus' text format. Off unless `METRICS_TOKEN` is set; then it
//! answers only requests bearing that token (`Authorization: Bearer …`), on the main
//! port. Labels carry codes and names, never user data.
//!
//! What is counted: tickets made, the code pool (depth, served from it or on demand),
//! phone calls that succeeded, every API error by code (refusals, rate limits, WeChat
//! failures), sign-ins and finalize latency, long-polls open, WeChat calls by API and
//! outcome with latency, access-token fetches, OIDC tokens issued.

use crate::server::state::AppState;
use crate::server::wechat::parse::WechatError;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::future::Future;
use std::sync::OnceLock;
use std::time::Instant;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder (once; every instance in the process shares it).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
            let built = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .and_then(|b| b.install_recorder());
            built.map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed")).ok()
        })
        .as_ref()
}

/// Times and counts one WeChat call: `scanlogin_wechat_calls_total{api, outcome}` and
/// `scanlogin_wechat_call_seconds{api}`.
pub async fn wechat_call<T>(api: &'static str, call: impl Future<Output = Result<T, WechatError>>) -> Result<T, WechatError> {
    let started = Instant::now();
    let answer = call.await;
    let outcome = match &answer {
        Ok(_) => "ok".to_string(),
        Err(WechatError::Api { errcode, .. }) => format!("errcode_{errcode}"),
        Err(WechatError::Http(_)) => "http_error".into(),
        Err(WechatError::Transport(_)) => "transport".into(),
        Err(WechatError::Malformed(_)) => "malformed".into(),
    };
    metrics::counter!("scanlogin_wechat_calls_total", "api" => api, "outcome" => outcome).increment(1);
    metrics::histogram!("scanlogin_wechat_call_seconds", "api" => api).record(started.elapsed().as_secs_f64());
    answer
}

/// Counts a long-poll while it is open (`scanlogin_longpolls_open`).
pub struct OpenLongPoll;

impl OpenLongPoll {
    pub fn start() -> Self {
        metrics::gauge!("scanlogin_longpolls_open").increment(1.0);
        OpenLongPoll
    }
}

impl Drop for OpenLongPoll {
    fn drop(&mut self) {
        metrics::gauge!("scanlogin_longpolls_open").decrement(1.0);
    }
}

/// `GET /metrics`.
pub async fn serve(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let Some(expected) = st.site.metrics_token.as_deref() else { return StatusCode::NOT_FOUND.into_response() };
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let allowed = given.is_some_and(|g| crate::server::tokens::TokenHash::of(g) == crate::server::tokens::TokenHash::of(expected));
    if !allowed {
        let mut res = StatusCode::UNAUTHORIZED.into_response();
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"metrics\""));
        return res;
    }
    let Some(handle) = install() else { return StatusCode::SERVICE_UNAVAILABLE.into_response() };
    handle.run_upkeep();
    metrics::gauge!("scanlogin_code_pool_ready").set(st.codes.len() as f64);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4"), (header::CACHE_CONTROL, "no-store")], handle.render()).into_response()
}
