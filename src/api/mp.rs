//! Endpoints the mini program (and the simulated phone) calls. No cookies: the caller
//! is identified by its `wx.login` code, then by the confirm token it got back.

use crate::error::AppError;
use crate::model::{PhoneAnswer, ScanAnswer};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

/// The phone scanned `ticket`; `code` comes from `wx.login()`.
#[server(prefix = "/api", endpoint = "mp/scan", input = Json, output = Json)]
pub async fn mp_scan(ticket: String, code: String) -> Result<ScanAnswer, AppError> {
    crate::server::handlers::scan(ticket, code).await
}

/// The scanner tapped 点击登录.
#[server(prefix = "/api", endpoint = "mp/confirm", input = Json, output = Json)]
pub async fn mp_confirm(ticket: String, confirm_token: String) -> Result<PhoneAnswer, AppError> {
    crate::server::handlers::confirm(ticket, confirm_token).await
}

/// The scanner tapped 取消.
#[server(prefix = "/api", endpoint = "mp/cancel", input = Json, output = Json)]
pub async fn mp_cancel(ticket: String, confirm_token: String) -> Result<PhoneAnswer, AppError> {
    crate::server::handlers::cancel(ticket, confirm_token).await
}
