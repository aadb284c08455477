//! HTTP around the Leptos app: the API contract's checks ([`api`]), the pages' guards,
//! policy and language switch ([`pages`]), and the headers every answer carries
//! ([`headers`]).

pub mod api;
pub mod headers;
pub mod pages;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A `302 Found` to a same-site path.
pub fn found(location: &str) -> Response {
    let mut res = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
