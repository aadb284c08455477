//! The one error type every endpoint answers with: a machine `code` and a user-safe
//! `message` (`{"code": "...", "message": "..."}`), see docs/api.md.
//!
//! Internal detail is logged where the error is made and never enters `message`.

use crate::i18n::Lang;
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// The machine-readable error codes of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum ErrorCode {
    BadRequest,
    InvalidWxCode,
    Unauthenticated,
    NotScanner,
    CrossSite,
    TicketNotFound,
    NotFound,
    MethodNotAllowed,
    AlreadyScanned,
    NotConfirmed,
    AlreadyConfirmed,
    TicketCancelled,
    TicketUsed,
    TicketExpired,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    WechatUnavailable,
    WechatQuota,
    /// A fault of ours; details are in the server log.
    Internal,
    /// The browser could not reach the server (never sent by the server).
    Network,
    /// A code this build does not know (a newer server); handled as a failure.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The HTTP status the contract assigns to this code.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            BadRequest | InvalidWxCode => 400,
            Unauthenticated => 401,
            NotScanner | CrossSite => 403,
            TicketNotFound | NotFound => 404,
            MethodNotAllowed => 405,
            AlreadyScanned | NotConfirmed | AlreadyConfirmed | TicketCancelled | TicketUsed => 409,
            TicketExpired => 410,
            PayloadTooLarge => 413,
            UnsupportedMediaType => 415,
            RateLimited => 429,
            WechatUnavailable => 502,
            WechatQuota => 503,
            Internal | Network | Unknown => 500,
        }
    }

    /// The user-facing message in `lang`.
    pub fn message(self, lang: Lang) -> &'static str {
        use ErrorCode::*;
        let (zh, en) = match self {
            BadRequest => ("请求格式不正确", "The request is malformed"),
            InvalidWxCode => ("微信登录凭证无效或已使用，请重新扫码", "The WeChat login code is invalid or already used; please scan again"),
            Unauthenticated => ("请先登录", "Please sign in first"),
            NotScanner => ("只有扫码的微信用户可以确认或取消此次登录", "Only the WeChat user who scanned can confirm or cancel this sign-in"),
            CrossSite => ("拒绝来自其他网站的请求", "Requests from other sites are refused"),
            TicketNotFound => ("登录二维码不存在或已失效", "This sign-in code does not exist or is no longer valid"),
            NotFound => ("接口不存在", "No such endpoint"),
            MethodNotAllowed => ("请求方法不被允许", "Method not allowed"),
            AlreadyScanned => ("该二维码已被其他微信用户扫描", "This code was already scanned by another WeChat user"),
            NotConfirmed => ("请先在手机上确认登录", "Please confirm on the phone first"),
            AlreadyConfirmed => ("此次登录已确认", "This sign-in was already confirmed"),
            TicketCancelled => ("此次登录已取消", "This sign-in was cancelled"),
            TicketUsed => ("此次登录已完成，二维码不能重复使用", "This sign-in is complete; the code cannot be used again"),
            TicketExpired => ("二维码已过期，请在网页上刷新", "The code has expired; refresh it on the website"),
            PayloadTooLarge => ("请求内容过大", "The request body is too large"),
            UnsupportedMediaType => ("请求内容类型必须是 JSON", "The request body must be JSON"),
            RateLimited => ("操作太频繁，请稍后再试", "Too many requests; please try again later"),
            WechatUnavailable => ("微信服务暂时不可用，请稍后重试", "WeChat is unavailable right now; please try again"),
            WechatQuota => ("微信接口调用已达上限，请稍后再试", "WeChat is rate limiting us; please try again later"),
            Internal => ("服务器内部错误，请稍后重试", "Internal server error; please try again"),
            Network => ("无法连接服务器", "Cannot reach the server"),
            Unknown => ("未知错误", "Unknown error"),
        };
        match lang {
            Lang::ZhCn => zh,
            Lang::En => en,
        }
    }
}

/// An error as it crosses the wire: `{"code", "message"}` (+ `retry_after` seconds
/// for 429/503, also sent as a `Retry-After` header).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct AppError {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people (re-localized per request by the API middleware).
    pub message: String,
    /// Seconds to wait before retrying, for `rate_limited` and `wechat_quota`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl AppError {
    /// An error with the default-language message for `code`.
    pub fn new(code: ErrorCode) -> Self {
        AppError { code, message: code.message(Lang::default()).to_string(), retry_after: None }
    }

    /// Adds a retry hint in seconds.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// An internal failure: logs `detail` (never sent) and returns a generic error.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        AppError::new(ErrorCode::Internal)
    }
}

impl From<ErrorCode> for AppError {
    fn from(code: ErrorCode) -> Self {
        AppError::new(code)
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            // The request's own body did not decode into the function's arguments.
            ServerFnErrorErr::Args(m) | ServerFnErrorErr::Deserialization(m) | ServerFnErrorErr::MissingArg(m) => {
                if m.contains("length limit exceeded") {
                    AppError::new(ErrorCode::PayloadTooLarge)
                } else {
                    tracing::debug!(detail = %m, "request did not decode");
                    AppError::new(ErrorCode::BadRequest)
                }
            }
            // On the browser side: the request never got an answer.
            ServerFnErrorErr::Request(_) | ServerFnErrorErr::Response(_) => AppError::new(ErrorCode::Network),
            other => AppError::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape_and_unknown_codes() {
        let e = AppError::new(ErrorCode::TicketNotFound);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["code"], "ticket_not_found");
        assert!(v.get("retry_after").is_none());
        let parsed: AppError = serde_json::from_str(r#"{"code":"brand_new","message":"x"}"#).unwrap();
        assert_eq!(parsed.code, ErrorCode::Unknown);
    }

    #[test]
    fn statuses_follow_the_contract() {
        assert_eq!(ErrorCode::NotScanner.status(), 403);
        assert_eq!(ErrorCode::TicketExpired.status(), 410);
        assert_eq!(ErrorCode::TicketUsed.status(), 409);
        assert_eq!(ErrorCode::WechatQuota.status(), 503);
        assert_ne!(ErrorCode::BadRequest.message(Lang::En), ErrorCode::BadRequest.message(Lang::ZhCn));
    }
}
