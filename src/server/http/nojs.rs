//! The pages' forms, which work without JavaScript. Signing in: the login page's first
//! HTML already carries the ticket's QR and a form (hidden once the page is hydrated)
//! whose button posts the ticket and its finalize key here, in the body, never in a URL.
//! The answer waits for the phone's confirmation as long as a long-poll would, then
//! signs the browser in and goes on as the page would have. The account page's 退出登录
//! and 退出其他设备 are forms too.

use super::{esc, found, message_page, refusal_page};
use crate::domain::{FinalizeKey, TicketId, UserId};
use crate::error::{AppError, ErrorCode};
use crate::i18n::Lang;
use crate::model::TicketStatus;
use crate::server::caller::Caller;
use crate::server::error::request_lang;
use crate::server::http::api::check_same_site;
use crate::server::session::WebSession;
use crate::server::state::AppState;
use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use tokio::time::Instant;

/// The form's fields.
#[derive(Deserialize)]
pub struct Complete {
    ticket: String,
    finalize_key: String,
}

/// `POST /login/complete`.
pub async fn complete(
    State(st): State<AppState>,
    web: WebSession,
    who: Caller,
    headers: HeaderMap,
    form: Result<Form<Complete>, FormRejection>,
) -> Response {
    let lang = request_lang(&headers);
    if let Err(e) = check_same_site(&headers, &st.site.public_url) {
        return refusal(lang, &e);
    }
    let parsed = form.ok().and_then(|Form(f)| Some((TicketId::try_from(f.ticket).ok()?, FinalizeKey::try_from(f.finalize_key).ok()?)));
    let Some((ticket, key)) = parsed else { return refusal(lang, &ErrorCode::BadRequest.into()) };
    match wait_for_phone(&st, &web, &ticket).await {
        Ok(TicketStatus::Waiting | TicketStatus::Scanned) => not_yet(lang, &ticket, &key),
        Ok(_) => match crate::server::signin::finalize(&st, &web, &who, &ticket, Some(key)).await {
            Ok(f) => {
                let mut res = found(&f.finalized.next);
                if let Some(v) = f.forward_auth_cookie.and_then(|c| axum::http::HeaderValue::from_str(&c).ok()) {
                    res.headers_mut().append(axum::http::header::SET_COOKIE, v);
                }
                res
            }
            Err(e) => refusal(lang, &e),
        },
        Err(e) => refusal(lang, &e),
    }
}

/// Follows the ticket until the phone has decided or a long-poll's length has passed.
async fn wait_for_phone(st: &AppState, web: &WebSession, ticket: &TicketId) -> Result<TicketStatus, AppError> {
    let browser_key = web.existing_browser_key().await?.ok_or(AppError::new(ErrorCode::TicketNotFound))?;
    let deadline = Instant::now() + st.site.longpoll;
    let mut seen = 0;
    loop {
        let t = st.tickets.follow(ticket, &browser_key, seen, deadline.saturating_duration_since(Instant::now())).await?;
        let undecided = matches!(t.status, TicketStatus::Waiting | TicketStatus::Scanned);
        if !undecided || Instant::now() >= deadline || st.tickets.is_draining() {
            return Ok(t.status);
        }
        seen = t.version;
    }
}

/// `POST /logout`: 退出登录, the account page's form (`/api/logout` is the same for
/// scripts). Then to the login page.
pub async fn logout(State(st): State<AppState>, web: WebSession, who: Caller, headers: HeaderMap) -> Response {
    if let Err(e) = check_same_site(&headers, &st.site.public_url) {
        return refusal(request_lang(&headers), &e);
    }
    crate::server::signin::sign_out(&st, &web, &who).await;
    found("/login")
}

/// `POST /account/sign-out-others`: 退出其他设备, the account page's form. Back to the
/// account page, which then says how it went; signed out already: to the login page.
pub async fn revoke_others(State(st): State<AppState>, web: WebSession, who: Caller, headers: HeaderMap) -> Response {
    if let Err(e) = check_same_site(&headers, &st.site.public_url) {
        return refusal(request_lang(&headers), &e);
    }
    match crate::server::signin::revoke_others(&st, &web, &who).await {
        Ok(_) => found(&format!("/account?{}=1", crate::pages::account::REVOKED_PARAM)),
        Err(e) if e.code == ErrorCode::Unauthenticated => found("/login?next=/account"),
        Err(e) => refusal(request_lang(&headers), &e),
    }
}

/// The admin console's forms: one user, one action.
#[derive(Deserialize)]
pub struct AdminAction {
    id: UserId,
    action: String,
    #[serde(default)]
    groups: String,
    /// `sign_out_session`: which browser (as `/admin/sessions` lists it).
    #[serde(default)]
    session: String,
}

/// `POST /admin/user`: an action of the admin console (approve, disable, enable,
/// make_admin, remove_admin, groups, sign_out, sign_out_session), the same decision as `/api/admin/user`. Back to the
/// console at that user's row; a refusal is a page saying why.
pub async fn admin_user(
    State(st): State<AppState>,
    web: WebSession,
    who: Caller,
    headers: HeaderMap,
    form: Result<Form<AdminAction>, FormRejection>,
) -> Response {
    use crate::domain::UserStatus;
    use crate::server::people::{Change, update_user};
    let lang = request_lang(&headers);
    let actor = match super::invite::console_admin(&st, &web, &headers, "/admin").await {
        Ok(a) => a,
        Err(res) => return res,
    };
    let Ok(Form(f)) = form else { return admin_refusal(lang, &ErrorCode::BadRequest.into()) };
    let change = match f.action.as_str() {
        "approve" | "enable" => Change { status: Some(UserStatus::Active), ..Change::default() },
        "disable" => Change { status: Some(UserStatus::Disabled), ..Change::default() },
        "make_admin" => Change { admin: Some(true), ..Change::default() },
        "remove_admin" => Change { admin: Some(false), ..Change::default() },
        "sign_out" => {
            return match crate::server::people::sign_out_everywhere(&st, &actor, &who, f.id).await {
                Ok(_) => found(&format!("/admin#user-{}", f.id)),
                Err(e) => admin_refusal(lang, &e),
            };
        }
        "sign_out_session" => {
            return match crate::server::people::sign_out_browser(&st, &actor, &who, f.id, &f.session).await {
                Ok(()) => found(&format!("/admin/sessions?user={}", f.id)),
                Err(e) => admin_refusal(lang, &e),
            };
        }
        "groups" => match super::invite::parse_groups(&f.groups) {
            Ok(g) => Change { groups: Some(g), ..Change::default() },
            Err(_) => return admin_refusal(lang, &ErrorCode::BadRequest.into()),
        },
        _ => return admin_refusal(lang, &ErrorCode::BadRequest.into()),
    };
    match update_user(&st, &actor, &who, f.id, change).await {
        Ok(_) => found(&format!("/admin#user-{}", f.id)),
        Err(e) => admin_refusal(lang, &e),
    }
}

/// The phone has not confirmed yet: the same form again.
fn not_yet(lang: Lang, ticket: &TicketId, key: &FinalizeKey) -> Response {
    let ui = lang.ui();
    let body = format!(
        "<p>{waiting}</p><form method=\"post\" action=\"/login/complete\">\
         <input type=\"hidden\" name=\"ticket\" value=\"{t}\"><input type=\"hidden\" name=\"finalize_key\" value=\"{k}\">\
         <button type=\"submit\">{go}</button></form><p><a href=\"/login\">{new}</a></p>",
        waiting = esc(ui.nojs_waiting),
        t = esc(ticket.as_str()),
        k = esc(key.as_str()),
        go = esc(ui.nojs_continue),
        new = esc(ui.new_code),
    );
    message_page(StatusCode::OK, lang.tag(), ui.login_title, &body)
}

/// A refusal of the admin console's forms, leading back to it.
fn admin_refusal(lang: Lang, e: &AppError) -> Response {
    let ui = lang.ui();
    refusal_page(lang, e, ui.admin_title, Some(("/admin", ui.admin_title)))
}

/// Refused, with the reason and the way to a new code.
fn refusal(lang: Lang, e: &AppError) -> Response {
    let ui = lang.ui();
    refusal_page(lang, e, ui.login_title, Some(("/login", ui.new_code)))
}
