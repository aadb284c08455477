//! Endpoints the browser calls (cookie session).

use crate::error::AppError;
use crate::model::{Empty, Finalized, MeView, Revoked, StatusView, TicketIssued};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

/// Creates a login ticket bound to this browser, with its mini-program code.
#[server(prefix = "/api", endpoint = "login/ticket", input = Json, output = Json)]
pub async fn create_ticket(next: Option<String>) -> Result<TicketIssued, AppError> {
    crate::server::handlers::create_ticket(next).await
}

/// Long-polls a ticket's status: answers when its version exceeds `seen`.
#[server(prefix = "/api", endpoint = "login/status", input = Json, output = Json)]
pub async fn login_status(ticket: String, seen: u64) -> Result<StatusView, AppError> {
    crate::server::handlers::status(ticket, seen).await
}

/// Turns a confirmed ticket into a signed-in session.
#[server(prefix = "/api", endpoint = "login/finalize", input = Json, output = Json)]
pub async fn finalize_login(ticket: String) -> Result<Finalized, AppError> {
    crate::server::handlers::finalize(ticket).await
}

/// The signed-in user and their recent logins.
#[server(prefix = "/api", endpoint = "me", input = Json, output = Json)]
pub async fn me() -> Result<MeView, AppError> {
    crate::server::handlers::me().await
}

/// Ends the session.
#[server(prefix = "/api", endpoint = "logout", input = Json, output = Json)]
pub async fn logout() -> Result<Empty, AppError> {
    crate::server::handlers::logout().await
}

/// Signs the user out of every other browser (退出其他设备).
#[server(prefix = "/api", endpoint = "sessions/revoke-others", input = Json, output = Json)]
pub async fn revoke_other_sessions() -> Result<Revoked, AppError> {
    crate::server::handlers::revoke_other_sessions().await
}
