//! `WECHAT_QR_MODE=link`: the QR holds `PUBLIC_URL/q/<ticket>`. WeChat's scanner opens the
//! mini program with that URL in `options.q` and never fetches it; any other camera opens
//! it as this page, which offers the same 「在微信中打开」 link as the login page. Also the
//! verification file WeChat's admin console asks the domain to serve for such codes.

use super::{esc, message_page, refusal_page};
use crate::domain::TicketId;
use crate::error::{AppError, ErrorCode};
use crate::model::TicketStatus;
use crate::server::error::request_lang;
use crate::server::state::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// `GET /q/{ticket}`: a waiting ticket's link page; any other ticket, a refusal that says
/// what happened to it.
pub async fn show(State(st): State<AppState>, headers: HeaderMap, Path(ticket): Path<String>) -> Response {
    let lang = request_lang(&headers);
    let ui = lang.ui();
    let refuse = |e: AppError| refusal_page(lang, &e, ui.link_page_title, None);
    let Ok(id) = TicketId::try_from(ticket) else { return refuse(ErrorCode::TicketNotFound.into()) };
    let t = match st.tickets.load(&id).await {
        Ok(Some(t)) => t,
        Ok(None) => return refuse(ErrorCode::TicketNotFound.into()),
        Err(e) => return refuse(e),
    };
    let refused = match t.status {
        TicketStatus::Waiting => None,
        TicketStatus::Scanned => Some(ErrorCode::AlreadyScanned),
        TicketStatus::Cancelled => Some(ErrorCode::TicketCancelled),
        TicketStatus::Expired => Some(ErrorCode::TicketExpired),
        TicketStatus::Confirmed | TicketStatus::Consumed | TicketStatus::Unknown => Some(ErrorCode::TicketUsed),
    };
    if let Some(code) = refused {
        return refuse(code.into());
    }
    let mut body = format!("<p>{}</p>", esc(ui.link_page_body));
    match st.open_links.for_ticket(&id).await {
        Some(link) => body.push_str(&format!(
            "<p><a class=\"open-button\" data-testid=\"open-link\" href=\"{}\">{}</a></p>",
            esc(&link),
            esc(ui.open_in_wechat)
        )),
        None => body.push_str(&format!("<p>{}</p>", esc(ui.link_page_no_link))),
    }
    message_page(StatusCode::OK, lang.tag(), ui.link_page_title, &body)
}

/// The verification file (`WECHAT_QR_VERIFY_FILE`), as WeChat fetches it: plain text.
pub fn verify_file(body: std::sync::Arc<[u8]>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body.to_vec()).into_response()
}
