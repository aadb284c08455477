//! The email pages (`server::email`): `/account/email` (the address, and the form that
//! mails a verification link; a site that requires an email sends the person here with
//! `next`), the form's post, and `/account/email/verify/<token>` (the mailed link).

use super::profile::{account_refusal, account_user};
use super::{esc, found, message_page};
use crate::domain::NextPath;
use crate::server::caller::Caller;
use crate::server::error::request_lang;
use crate::server::handoff::Handoff;
use crate::server::session::WebSession;
use crate::server::state::AppState;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

#[derive(Deserialize, Default)]
pub struct NextQuery {
    next: Option<String>,
}

/// A same-site `next`, else the account page.
fn next_of(raw: Option<&str>) -> NextPath {
    raw.and_then(|n| NextPath::try_from(n.to_string()).ok()).unwrap_or_default()
}

/// The demo mailbox's link, in demo mode.
fn demo_link(st: &AppState, words: &str) -> String {
    if matches!(*st.mailer, crate::server::mail::Mailer::Demo(_)) {
        format!("<p><a href=\"/_wechat/mailbox\" target=\"_blank\" data-testid=\"demo-mailbox\">{}</a></p>", esc(words))
    } else {
        String::new()
    }
}

/// `GET /account/email?next=…`.
pub async fn show(State(st): State<AppState>, web: WebSession, headers: HeaderMap, Query(q): Query<NextQuery>) -> Response {
    let lang = request_lang(&headers);
    let t = lang.people();
    let next = next_of(q.next.as_deref());
    let signed_in = match web.signed_in_now(&st).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            let back: String = url::form_urlencoded::byte_serialize(format!("/account/email?next={}", next.as_str()).as_bytes()).collect();
            return found(&format!("/login?next={back}"));
        }
        Err(e) => return account_refusal(lang, &e),
    };
    let user = match st.users.get(signed_in.user).await {
        Ok(Some(u)) => u,
        Ok(None) => return found("/login?next=/account"),
        Err(e) => return account_refusal(lang, &e.into()),
    };
    let mut body = String::new();
    // A site that requires an email sent the person here: name it (from our own records,
    // never from the URL).
    if let Some(p) = &st.oidc
        && let Some(site) = p.client_name(&Handoff::from_login(Some(next.clone()), false)).await
    {
        body.push_str(&format!(
            "<p class=\"notice\" data-testid=\"email-required\">{}</p>",
            esc(&t.email_required.replace("{site}", &site))
        ));
    }
    body.push_str(&match &user.email {
        Some(e) => format!("<p data-testid=\"email-current\">{}</p>", esc(&t.email_current.replace("{email}", e))),
        None => format!("<p data-testid=\"email-none\">{}</p>", esc(t.email_none)),
    });
    if st.mailer.is_on() {
        body.push_str(&format!(
            "<form method=\"post\" action=\"/account/email\"><input type=\"hidden\" name=\"next\" value=\"{}\">\
             <input type=\"email\" name=\"email\" required maxlength=\"254\" placeholder=\"{}\" data-testid=\"email-input\"> \
             <button type=\"submit\" data-testid=\"email-send\">{}</button></form>",
            esc(next.as_str()),
            esc(t.email_placeholder),
            esc(t.email_send)
        ));
    } else {
        body.push_str(&format!("<p data-testid=\"email-off\">{}</p>", esc(t.email_off)));
    }
    body.push_str(&format!("<p><a href=\"/account\">{}</a></p>", esc(t.to_account)));
    message_page(StatusCode::OK, lang.tag(), t.email_title, &body)
}

#[derive(Deserialize)]
pub struct EmailForm {
    email: String,
    next: Option<String>,
}

/// `POST /account/email`: mails a verification link (same-site, signed in).
pub async fn send(
    State(st): State<AppState>,
    web: WebSession,
    who: Caller,
    headers: HeaderMap,
    form: Result<Form<EmailForm>, FormRejection>,
) -> Response {
    let lang = request_lang(&headers);
    let t = lang.people();
    let user = match account_user(&st, &web, &headers).await {
        Ok(u) => u,
        Err(res) => return res,
    };
    let Ok(Form(f)) = form else { return account_refusal(lang, &crate::error::ErrorCode::BadRequest.into()) };
    let next = next_of(f.next.as_deref());
    match crate::server::email::start(&st, &user, &who, &f.email, &next).await {
        Ok(to) => {
            let body = format!(
                "<p data-testid=\"email-sent\">{}</p>{}",
                esc(&t.email_sent.replace("{email}", &to)),
                demo_link(&st, t.demo_mailbox)
            );
            message_page(StatusCode::OK, lang.tag(), t.email_title, &body)
        }
        Err(e) => account_refusal(lang, &e),
    }
}

/// `GET /account/email/verify/{token}`: the mailed link. The address becomes the person's;
/// a browser signed in as them goes on to where they were going.
pub async fn verify(State(st): State<AppState>, web: WebSession, who: Caller, headers: HeaderMap, Path(token): Path<String>) -> Response {
    let lang = request_lang(&headers);
    let t = lang.people();
    let (user, next) = match crate::server::email::verify(&st, &token, &who).await {
        Ok(v) => v,
        Err(e) => return account_refusal(lang, &e),
    };
    match web.signed_in_now(&st).await {
        Ok(Some(s)) if s.user == user => found(next.as_str()),
        _ => message_page(
            StatusCode::OK,
            lang.tag(),
            t.email_title,
            &format!(
                "<p data-testid=\"email-verified\">{}</p><p><a href=\"{}\">{}</a></p>",
                esc(t.email_verified),
                esc(next.as_str()),
                esc(t.email_continue)
            ),
        ),
    }
}
