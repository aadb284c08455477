//! The provider's one error type. Each variant is one of the four ways OAuth 2.0 and
//! OpenID Connect say no, and renders as that protocol says:
//!
//! - [`OidcError::Page`]: our own error page, never a redirect (an unknown client or
//!   `redirect_uri`: RFC 6749 §4.1.2.1 forbids sending the person there);
//! - [`OidcError::Redirect`]: back to the client's registered `redirect_uri` with
//!   `error`, `error_description`, `state` and `iss` (RFC 6749 §4.1.2.1, RFC 9207);
//! - [`OidcError::Token`]: the token endpoint's JSON (RFC 6749 §5.2), `no-store`;
//! - [`OidcError::Bearer`]: a protected resource's 401 (RFC 6750 §3);
//!
//! and, past a rate limit, [`OidcError::RateLimited`]: 429 with `Retry-After`.
//!
//! Handlers return `Result<Response, OidcError>` and use `?`; internal failures are
//! logged once here and answered without detail.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Why the provider said no, and to whom.
#[derive(Debug)]
pub enum OidcError {
    /// No provider is configured: the paths do not exist.
    NotEnabled,
    /// An error page of ours (bilingual text, already plain): no redirect.
    Page { status: StatusCode, message: &'static str },
    /// Back to the client with RFC 6749 error parameters.
    Redirect(ClientRedirect),
    /// The token endpoint's error answer.
    Token { status: StatusCode, error: &'static str, description: &'static str },
    /// A bearer token that is missing, unknown, expired or revoked.
    Bearer,
    /// Too many requests from this client: 429 with `Retry-After`, as a page (`json:
    /// false`, the authorization endpoint) or the token endpoint's JSON.
    RateLimited { retry_after: u64, json: bool },
    /// A failure of ours (database, signing); the detail goes to the log only.
    Internal(String),
}

/// Where an authorization answer goes: the client's registered `redirect_uri`, the
/// request's `state`, and our issuer (`iss`, RFC 9207), with the answer's parameters.
#[derive(Clone, Debug)]
pub struct ClientRedirect {
    pub redirect_uri: String,
    pub state: Option<String>,
    pub issuer: String,
    pub params: Vec<(&'static str, String)>,
}

impl ClientRedirect {
    /// The answer's URL: the registered URI with `params`, `state` and `iss` appended.
    pub fn into_response(self) -> Response {
        let Ok(mut url) = url::Url::parse(&self.redirect_uri) else {
            return OidcError::Page { status: StatusCode::BAD_REQUEST, message: "redirect_uri" }.into_response();
        };
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in &self.params {
                q.append_pair(k, v);
            }
            if let Some(s) = &self.state {
                q.append_pair("state", s);
            }
            q.append_pair("iss", &self.issuer);
        }
        crate::server::http::found(url.as_str())
    }
}

impl OidcError {
    /// A database or signing failure: logged when rendered.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        OidcError::Internal(e.to_string())
    }

    /// `invalid_grant` from the token endpoint.
    pub fn invalid_grant(description: &'static str) -> Self {
        OidcError::Token { status: StatusCode::BAD_REQUEST, error: "invalid_grant", description }
    }

    /// `invalid_request` from the token endpoint.
    pub fn invalid_token_request(description: &'static str) -> Self {
        OidcError::Token { status: StatusCode::BAD_REQUEST, error: "invalid_request", description }
    }

    /// `invalid_client` from the token endpoint (401, with the Basic challenge).
    pub fn invalid_client() -> Self {
        OidcError::Token { status: StatusCode::UNAUTHORIZED, error: "invalid_client", description: "client authentication failed" }
    }
}

impl From<sqlx::Error> for OidcError {
    fn from(e: sqlx::Error) -> Self {
        OidcError::internal(e)
    }
}

impl OidcError {
    /// `limit`'s verdict for `caller`: its refusal as this endpoint answers one.
    pub async fn check_limit(
        limit: &crate::server::limits::KeyedLimit,
        caller: &crate::server::caller::Caller,
        json: bool,
    ) -> Result<(), Self> {
        match limit.check(&crate::server::limits::client_bucket(caller.ip)).await {
            Ok(()) => Ok(()),
            Err(e) if e.code == crate::error::ErrorCode::RateLimited => {
                Err(OidcError::RateLimited { retry_after: e.retry_after.unwrap_or(60), json })
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl From<crate::error::AppError> for OidcError {
    fn from(e: crate::error::AppError) -> Self {
        OidcError::internal(format!("{e:?}"))
    }
}

/// A JSON body that no cache keeps.
fn no_store(mut res: Response) -> Response {
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

impl IntoResponse for OidcError {
    fn into_response(self) -> Response {
        match self {
            OidcError::NotEnabled => StatusCode::NOT_FOUND.into_response(),
            OidcError::Page { status, message } => {
                use crate::server::http::{esc, message_page};
                message_page(status, "zh-CN", "登录请求无效 · Invalid sign-in request", &format!("<p>{}</p>", esc(message)))
            }
            OidcError::Redirect(to) => to.into_response(),
            OidcError::Token { status, error, description } => {
                let body = serde_json::json!({ "error": error, "error_description": description });
                let mut res = no_store((status, axum::Json(body)).into_response());
                if status == StatusCode::UNAUTHORIZED {
                    res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"scanlogin\""));
                }
                res
            }
            OidcError::RateLimited { retry_after, json } => {
                let mut res = if json {
                    let body = serde_json::json!({ "error": "rate_limited", "error_description": "too many requests; retry later" });
                    no_store((StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response())
                } else {
                    use crate::server::http::message_page;
                    message_page(
                        StatusCode::TOO_MANY_REQUESTS,
                        "zh-CN",
                        "请求过于频繁 · Too many requests",
                        "<p>请稍后再试。Please try again in a moment.</p>",
                    )
                };
                res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                res
            }
            OidcError::Bearer => {
                let mut res = StatusCode::UNAUTHORIZED.into_response();
                res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
                res
            }
            OidcError::Internal(detail) => {
                tracing::error!(error = %detail, "oidc: internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
        }
    }
}
