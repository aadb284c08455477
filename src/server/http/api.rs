//! The API contract around the server functions (docs/api.md): what is checked before
//! a function runs, and the JSON answers for what no function answers.
//!
//! The checks are server-function middleware, attached to the functions they guard:
//! every endpoint takes JSON only ([`JSON_ONLY`]); the browser's endpoints also refuse
//! requests another site made the browser send ([`SAME_SITE`]). Statuses of errors a
//! function returns are set where the error becomes the answer (`AppError::ser`).

use crate::error::{AppError, ErrorCode};
use crate::server::error::error_response;
use crate::server::state::AppState;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use leptos::prelude::use_context;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The largest request body accepted anywhere.
pub const MAX_BODY: usize = 16 * 1024;

/// A check a request must pass before a server function runs; a refusal is answered
/// at once and the function never runs.
#[derive(Clone, Copy)]
pub struct Guard(fn(&HeaderMap) -> Result<(), AppError>);

/// The body must be declared as JSON: 415 `unsupported_media_type` otherwise.
pub const JSON_ONLY: Guard = Guard(json_only);

/// Cookie-authenticated endpoints refuse cross-site requests: 403 `cross_site`.
pub const SAME_SITE: Guard = Guard(same_site);

fn json_only(headers: &HeaderMap) -> Result<(), AppError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if json { Ok(()) } else { Err(ErrorCode::UnsupportedMediaType.into()) }
}

fn same_site(headers: &HeaderMap) -> Result<(), AppError> {
    let public_url = use_context::<AppState>().map(|s| s.site.public_url.clone()).unwrap_or_default();
    check_same_site(headers, &public_url)
}

/// Refuses a request another site made a browser send: `Sec-Fetch-Site` naming another
/// site, or an `Origin` that is neither `public_url` nor this request's own host.
/// Requests with neither header (non-browser clients) pass.
pub fn check_same_site(headers: &HeaderMap, public_url: &str) -> Result<(), AppError> {
    if let Some(v) = headers.get("sec-fetch-site")
        && !matches!(v.as_bytes(), b"same-origin" | b"same-site" | b"none")
    {
        return Err(ErrorCode::CrossSite.into());
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null");
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let same =
            origin == public_url || (!host.is_empty() && (origin == format!("http://{host}") || origin == format!("https://{host}")));
        if !same {
            return Err(ErrorCode::CrossSite.into());
        }
    }
    Ok(())
}

impl<S> tower::Layer<S> for Guard {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded { inner, check: self.0 }
    }
}

/// A service behind a [`Guard`].
pub struct Guarded<S> {
    inner: S,
    check: fn(&HeaderMap) -> Result<(), AppError>,
}

type Answer<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

impl<S> tower::Service<Request> for Guarded<S>
where
    S: tower::Service<Request, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Answer<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match (self.check)(req.headers()) {
            Ok(()) => {
                let answer = self.inner.call(req);
                Box::pin(async move {
                    // Answers about tickets and sessions are never cached anywhere.
                    let mut res = answer.await?;
                    res.headers_mut().entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
                    Ok(res)
                })
            }
            Err(e) => {
                let res = error_response(&e, req.headers());
                Box::pin(async move { Ok(res) })
            }
        }
    }
}

/// `/api/…` that is no endpoint: 404 `not_found` as JSON (not the HTML 404 page).
pub async fn not_found(req: Request) -> Response {
    error_response(&ErrorCode::NotFound.into(), req.headers())
}

/// An endpoint asked with the wrong method: 405 `method_not_allowed`, JSON under
/// `/api`, an empty body elsewhere.
pub async fn method_not_allowed(req: Request) -> Response {
    if req.uri().path().starts_with("/api/") {
        error_response(&ErrorCode::MethodNotAllowed.into(), req.headers())
    } else {
        let mut res = Response::new(Body::empty());
        *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        res
    }
}
