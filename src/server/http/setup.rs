//! `/setup/<secret>`: the one-time link that makes the first admin (logged at start
//! while there is none; `scanlogin admin setup-link` prints another). Signed out, it
//! leads to the scan page and back; signed in, a form whose button (a same-site POST)
//! spends the link and makes the signed-in person an active admin.

use super::{esc, found, message_page, refusal_page};
use crate::error::AppError;
use crate::server::caller::Caller;
use crate::server::error::request_lang;
use crate::server::handoff::Handoff;
use crate::server::http::api::check_same_site;
use crate::server::people;
use crate::server::session::WebSession;
use crate::server::state::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

/// A refusal page in the request's language.
fn refusal(headers: &HeaderMap, e: &AppError) -> Response {
    let lang = request_lang(headers);
    refusal_page(lang, e, lang.people().setup_title, None)
}

/// `GET /setup/{secret}`.
pub async fn show(State(st): State<AppState>, web: WebSession, headers: HeaderMap, Path(secret): Path<String>) -> Response {
    let now = st.clock.now();
    match people::setup_link_usable(&st.db, &secret, now).await {
        Ok(true) => {}
        Ok(false) => return refusal(&headers, &crate::error::ErrorCode::LinkInvalid.into()),
        Err(e) => return refusal(&headers, &AppError::internal(e)),
    }
    match web.signed_in(now, st.site.session_absolute).await {
        Ok(Some(_)) => {}
        Ok(None) => return found(&Handoff::setup(&secret).login_url()),
        Err(e) => return refusal(&headers, &e),
    }
    let lang = request_lang(&headers);
    let t = lang.people();
    let body = format!(
        "<p>{}</p><form method=\"post\" action=\"/setup/{}\"><button type=\"submit\">{}</button></form>",
        esc(t.setup_body),
        esc(&secret),
        esc(t.setup_button)
    );
    message_page(StatusCode::OK, lang.tag(), t.setup_title, &body)
}

/// `POST /setup/{secret}`: spends the link for the signed-in person.
pub async fn claim(State(st): State<AppState>, web: WebSession, who: Caller, headers: HeaderMap, Path(secret): Path<String>) -> Response {
    if let Err(e) = check_same_site(&headers, &st.site.public_url) {
        return refusal(&headers, &e);
    }
    let signed_in = match web.signed_in_now(&st).await {
        Ok(Some(s)) => s,
        Ok(None) => return found(&Handoff::setup(&secret).login_url()),
        Err(e) => return refusal(&headers, &e),
    };
    match people::claim_setup_link(&st, &secret, signed_in.user, &who).await {
        Ok(_) => found("/admin"),
        Err(e) => refusal(&headers, &e),
    }
}
