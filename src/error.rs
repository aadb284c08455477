//! The one error type every endpoint answers with: a machine `code` and a user-safe
//! `message` (`{"code": "...", "message": "..."}`), see docs/api.md.
//!
//! Internal detail is logged where the error is made and never enters `message`.

use crate::i18n::Lang;
use leptos::server_fn::Bytes;
use leptos::server_fn::Encodes;
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// The machine-readable error codes of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
    /// Too many logins in progress across the service; try again shortly.
    Busy,
    /// The scanner's account is disabled (refused on the phone, before confirm).
    AccountDisabled,
    /// Sign-up is by invitation and this WeChat user has none.
    InvitationRequired,
    /// Signed in, but not allowed (an admin endpoint for a non-admin).
    Forbidden,
    /// The change would leave no active admin.
    LastAdmin,
    /// A setup link or invitation that is unknown, used up or expired.
    LinkInvalid,
    /// No user with that id.
    UserNotFound,
    /// WeChat's content check refused the nickname.
    NicknameRejected,
    /// The avatar is not a PNG or JPEG within the limits.
    BadImage,
    /// Number matching: the phone picked another number than the browser shows.
    WrongNumber,
    /// Not an email address.
    InvalidEmail,
    /// Another person has this email address.
    EmailTaken,
    /// No mail can be sent (no SMTP configured, or the server refused).
    MailUnavailable,
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
            BadRequest | InvalidWxCode | NicknameRejected | BadImage | WrongNumber | InvalidEmail => 400,
            Unauthenticated => 401,
            NotScanner | CrossSite | AccountDisabled | InvitationRequired | Forbidden => 403,
            TicketNotFound | NotFound | UserNotFound => 404,
            MethodNotAllowed => 405,
            AlreadyScanned | NotConfirmed | AlreadyConfirmed | TicketCancelled | TicketUsed | LastAdmin | EmailTaken => 409,
            TicketExpired | LinkInvalid => 410,
            PayloadTooLarge => 413,
            UnsupportedMediaType => 415,
            RateLimited => 429,
            WechatUnavailable => 502,
            WechatQuota | Busy | MailUnavailable => 503,
            Internal | Network | Unknown => 500,
        }
    }

    /// The machine name on the wire (`ticket_not_found`), as serde spells it.
    pub fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    }

    /// The user-facing message in `lang` (the text lives in `i18n`).
    pub fn message(self, lang: Lang) -> &'static str {
        crate::i18n::error_message(self, lang)
    }
}

/// An error as it crosses the wire: `{"code", "message"}` (+ `retry_after` seconds
/// for 429/503, also sent as a `Retry-After` header).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct AppError {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people (in the request's language once answered).
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
            // The request's own body did not decode into the function's arguments (a
            // value that breaks its type's rules, see `crate::domain`, lands here too).
            ServerFnErrorErr::Args(m) | ServerFnErrorErr::Deserialization(m) | ServerFnErrorErr::MissingArg(m) => {
                tracing::debug!(detail = %m, "request did not decode");
                AppError::new(ErrorCode::BadRequest)
            }
            // On the browser side: the request never got an answer.
            ServerFnErrorErr::Request(_) | ServerFnErrorErr::Response(_) => AppError::new(ErrorCode::Network),
            other => AppError::internal(other),
        }
    }

    /// Runs on the server as the error becomes the response body: the one place where an
    /// error sets its HTTP status, `Retry-After` and the language of its message.
    fn ser(&self) -> Bytes {
        #[cfg(feature = "ssr")]
        let answer = crate::server::error::prepare_answer(self);
        #[cfg(not(feature = "ssr"))]
        let answer = self.clone();
        <JsonEncoding as Encodes<AppError>>::encode(&answer).unwrap_or_default()
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
