//! Errors on the server: how every internal failure becomes an [`AppError`], how an
//! `AppError` becomes an HTTP answer (status, `Retry-After`, the message in the
//! request's language), and what can stop the server from starting.

use crate::error::{AppError, ErrorCode};
use crate::i18n::Lang;
use crate::server::tickets::TicketError;
use crate::server::tickets::store::StoreError;
use crate::server::wechat::parse::WechatError;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use leptos::prelude::use_context;

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::internal(format!("database: {e}"))
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        AppError::internal(e)
    }
}

impl From<tower_sessions::session::Error> for AppError {
    fn from(e: tower_sessions::session::Error) -> Self {
        AppError::internal(format!("session: {e}"))
    }
}

impl From<TicketError> for AppError {
    fn from(e: TicketError) -> Self {
        AppError::new(ErrorCode::from(e))
    }
}

impl From<WechatError> for AppError {
    fn from(e: WechatError) -> Self {
        tracing::warn!(error = %e, "wechat call failed");
        match e.errcode() {
            Some(40029 | 40163) => AppError::new(ErrorCode::InvalidWxCode),
            Some(45009 | 45011) => AppError::new(ErrorCode::WechatQuota).retry_after(60),
            _ => AppError::new(ErrorCode::WechatUnavailable),
        }
    }
}

/// The language of a request: the `lang` cookie, else `Accept-Language`.
pub fn request_lang(headers: &HeaderMap) -> Lang {
    let cookie = crate::server::http::headers::cookie(headers, "lang");
    let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
    Lang::negotiate(cookie, accept)
}

/// The language of the request being served (inside a server function).
pub fn current_lang() -> Lang {
    use_context::<Parts>().map(|p| request_lang(&p.headers)).unwrap_or_default()
}

/// `err` with its message in `lang`.
fn localized(err: &AppError, lang: Lang) -> AppError {
    AppError { message: err.code.message(lang).to_string(), ..err.clone() }
}

/// The status and headers the contract gives `err`.
fn status_and_headers(err: &AppError) -> (StatusCode, Vec<(header::HeaderName, HeaderValue)>) {
    let status = StatusCode::from_u16(err.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut headers = vec![(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    if let Some(secs) = err.retry_after {
        headers.push((header::RETRY_AFTER, HeaderValue::from(secs)));
    }
    (status, headers)
}

/// Called as a server function's error becomes its answer (see `AppError::ser`): sets
/// the status and headers through `ResponseOptions` and returns the body to send.
pub fn prepare_answer(err: &AppError) -> AppError {
    metrics::counter!("scanlogin_api_errors_total", "code" => err.code.name()).increment(1);
    let lang = current_lang();
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        let (status, headers) = status_and_headers(err);
        res.set_status(status);
        for (name, value) in headers {
            res.insert_header(name, value);
        }
    }
    localized(err, lang)
}

/// An error as a complete answer, for what runs outside a server function (middleware,
/// fallbacks).
pub fn error_response(err: &AppError, request: &HeaderMap) -> Response {
    error_response_in(err, request_lang(request))
}

/// [`error_response`] in `lang`.
pub fn error_response_in(err: &AppError, lang: Lang) -> Response {
    let (status, headers) = status_and_headers(err);
    let body = axum::Json(localized(err, lang));
    let mut res = (status, body).into_response();
    res.headers_mut().extend(headers);
    res
}

/// Why the server could not start (exit code 1; invalid configuration exits with 2
/// before this).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("cannot open the database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the database's directory {path}: {source}")]
    DatabaseDir { path: String, source: std::io::Error },
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error("cannot read or make the ID-token signing keys: {0}")]
    SigningKeys(String),
    #[error("cannot watch SIGHUP to re-read ACCESS_RULES: {0}")]
    Signal(std::io::Error),
}

/// A signing-key failure at start: the database's (exit 1, like any database failure), a
/// sealed key without the right `OIDC_KEY_FILE` (configuration, exit 2), or a key that
/// cannot be read or made (exit 1).
impl From<crate::server::oidc::keys::KeyError> for StartupError {
    fn from(e: crate::server::oidc::keys::KeyError) -> Self {
        use crate::server::oidc::keys::KeyError;
        match e {
            KeyError::Store(e) => StartupError::Database(e),
            KeyError::Seal(why) => StartupError::Config(why),
            KeyError::Key(why) => StartupError::SigningKeys(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_carry_the_contract_status_retry_after_and_language() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("en-US,en;q=0.9"));
        let res = error_response(&AppError::new(ErrorCode::RateLimited).retry_after(7), &h);
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "7");
        assert_eq!(
            localized(&AppError::new(ErrorCode::RateLimited), request_lang(&h)).message,
            "Too many requests; please try again later"
        );
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; lang=zh-CN"));
        assert_eq!(request_lang(&h), Lang::ZhCn, "the cookie wins over Accept-Language");
    }

    #[test]
    fn a_database_failure_at_start_is_not_invalid_configuration() {
        use crate::server::oidc::keys::KeyError;
        let store = StartupError::from(KeyError::Store(sqlx::Error::PoolTimedOut));
        assert!(matches!(store, StartupError::Database(_)), "{store}");
        assert!(!store.to_string().contains("invalid configuration"));
        assert!(matches!(StartupError::from(KeyError::Seal("needs OIDC_KEY_FILE".into())), StartupError::Config(_)));
        assert!(matches!(StartupError::from(KeyError::Key("bad pem".into())), StartupError::SigningKeys(_)));
    }
}
