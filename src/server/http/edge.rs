//! The outermost layer of every stack, as one service whose future is not boxed: the
//! request id, the request's span (and its log lines), the body limit, the contract's
//! JSON `internal` answer for the session layer's bare 500s and for a handler that
//! panicked, and, for what a browser
//! reads, the security headers.
//!
//! These were five layers (four `from_fn` and tower-http's trace layer); each boxed a
//! future and a clone of the service below it for every request, ~6 KiB held by every
//! open request — and thousands of waiting long-polls are open at once
//! (docs/benchmarks.md).

use super::api::MAX_BODY;
use super::headers::{REQUEST_ID, security_headers};
use crate::error::ErrorCode;
use crate::i18n::Lang;
use crate::server::error::{error_response_in, request_lang};
use axum::body::{Body, HttpBody as _};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;
use tracing::Span;

/// The layer; `secure` adds HSTS to the security headers, `security_headers: false`
/// leaves them off (forward-auth's answers go to a proxy, not to a browser).
#[derive(Clone, Copy, Debug)]
pub struct Edge {
    pub secure: bool,
    pub security_headers: bool,
}

impl<S> tower::Layer<S> for Edge {
    type Service = EdgeService<S>;

    fn layer(&self, inner: S) -> EdgeService<S> {
        EdgeService { inner, edge: *self }
    }
}

/// A service behind [`Edge`].
#[derive(Clone, Debug)]
pub struct EdgeService<S> {
    inner: S,
    edge: Edge,
}

/// The id a proxy sent in `X-Request-Id` when it is a plain token (at most 64 of
/// `A-Z a-z 0-9 - _`), else a new one.
fn request_id(req: &Request) -> HeaderValue {
    let plain =
        |v: &HeaderValue| (1..=64).contains(&v.len()) && v.as_bytes().iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
    match req.headers().get(&REQUEST_ID).filter(|v| plain(v)) {
        Some(sent) => sent.clone(),
        None => new_request_id(),
    }
}

/// 12 random bytes as 16 base64url characters. An id names a request in the logs and
/// guards nothing, so it comes from the thread's generator (seeded from the OS) rather
/// than a system call per request as the tokens do.
fn new_request_id() -> HeaderValue {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut bytes);
    let mut text = [0u8; 16];
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_slice(bytes, &mut text).unwrap_or_default();
    HeaderValue::from_bytes(&text[..n]).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// The body's length as declared (`Content-Length`, or HTTP/2 ending the stream with
/// the headers); `None` when it is sent without one (chunked).
fn declared_length(req: &Request) -> Option<u64> {
    let header = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
    header.or_else(|| req.body().size_hint().exact())
}

impl<S> tower::Service<Request> for EdgeService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + Unpin + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let id = request_id(&req);
        req.headers_mut().insert(REQUEST_ID.clone(), id.clone());
        // The span names the path only: simulator URLs carry secrets in their query.
        let span = tracing::info_span!("http", method = %req.method(), path = %req.uri().path(),
            request_id = %id.to_str().unwrap_or("-"));
        let api_lang = req.uri().path().starts_with("/api/").then(|| request_lang(req.headers()));
        // The avatar upload is the one body allowed past the API's JSON limit.
        let limit = if req.uri().path() == "/api/mp/avatar" { super::profile::UPLOAD_BODY } else { MAX_BODY };
        let state = match declared_length(&req) {
            // Bodies over the limit get 413 `payload_too_large` before anything reads them.
            Some(n) if n > limit as u64 => {
                let lang = api_lang.unwrap_or_else(|| request_lang(req.headers()));
                State::Ready(Some(error_response_in(&ErrorCode::PayloadTooLarge.into(), lang)))
            }
            Some(_) => State::Direct(span.in_scope(|| self.inner.call(req))),
            None => {
                // Sent without a length: read up to the limit first (rare: browsers and
                // proxies send the length of a JSON body).
                let ready = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, ready);
                State::Buffered(Box::pin(async move {
                    let (parts, body) = req.into_parts();
                    match axum::body::to_bytes(body, limit).await {
                        Ok(bytes) => match inner.call(Request::from_parts(parts, Body::from(bytes))).await {
                            Ok(res) => res,
                            Err(e) => match e {},
                        },
                        Err(_) => error_response_in(&ErrorCode::PayloadTooLarge.into(), request_lang(&parts.headers)),
                    }
                }))
            }
        };
        EdgeFuture { state, span, id, api_lang, edge: self.edge, started: Instant::now() }
    }
}

enum State<F> {
    Ready(Option<Response>),
    Direct(F),
    Buffered(Pin<Box<dyn Future<Output = Response> + Send>>),
}

/// The answer of an [`EdgeService`].
pub struct EdgeFuture<F> {
    state: State<F>,
    span: Span,
    id: HeaderValue,
    api_lang: Option<Lang>,
    edge: Edge,
    started: Instant,
}

impl<F> Future for EdgeFuture<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let _entered = this.span.enter();
        // A panic below answers this request with the contract's JSON `internal` error
        // (and is logged) instead of dropping the connection without an answer.
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &mut this.state {
            State::Ready(res) => Poll::Ready(res.take().expect("an edge future polled after it answered")),
            State::Direct(fut) => Pin::new(fut).poll(cx).map(|r| match r {
                Ok(res) => res,
                Err(e) => match e {},
            }),
            State::Buffered(fut) => fut.as_mut().poll(cx),
        }));
        let mut res = match polled {
            Ok(poll) => ready!(poll),
            Err(panic) => {
                let what = panic.downcast_ref::<&str>().copied().or_else(|| panic.downcast_ref::<String>().map(String::as_str));
                tracing::error!(panic = what.unwrap_or("?"), "a handler panicked");
                this.state = State::Ready(None);
                error_response_in(&ErrorCode::Internal.into(), this.api_lang.unwrap_or_default())
            }
        };
        // The session layer answers a bare, empty 500 when it cannot save a session;
        // under `/api` that becomes the contract's JSON `internal` error.
        if let Some(lang) = this.api_lang
            && res.status() == StatusCode::INTERNAL_SERVER_ERROR
            && !res.headers().contains_key(header::CONTENT_TYPE)
        {
            res = error_response_in(&ErrorCode::Internal.into(), lang);
        }
        if this.edge.security_headers {
            security_headers(res.headers_mut(), this.edge.secure);
        }
        res.headers_mut().insert(REQUEST_ID.clone(), this.id.clone());
        let latency = this.started.elapsed();
        if res.status().is_server_error() {
            tracing::error!(status = res.status().as_u16(), ?latency, "response failed");
        } else {
            tracing::debug!(status = res.status().as_u16(), ?latency, "finished processing request");
        }
        Poll::Ready(Ok(res))
    }
}
