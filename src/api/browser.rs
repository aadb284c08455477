//! Endpoints the browser calls (cookie session). Each server function is its endpoint's
//! handler; the browser calls the same functions from the pages.

use crate::domain::{FinalizeKey, NextPath, TicketId};
use crate::error::AppError;
use crate::model::{Empty, Finalized, MeView, Revoked, StatusView, TicketIssued};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

#[cfg(feature = "ssr")]
use crate::{
    error::ErrorCode,
    server::{caller::Caller, session::WebSession, state::AppState},
};

/// Creates a login ticket bound to this browser, with its mini-program code.
#[server(prefix = "/api", endpoint = "login/ticket", input = Json, output = Json)]
#[middleware(crate::server::http::api::SAME_SITE)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn create_ticket(next: Option<NextPath>) -> Result<TicketIssued, AppError> {
    use crate::server::limits::client_bucket;
    use crate::server::tickets::Ticket;
    use crate::server::tokens::{self, TokenHash};

    let st = AppState::current()?;
    let who = Caller::current(&st).await?;
    st.limits.tickets_per_ip.check(&client_bucket(who.ip)).await?;
    let session = WebSession::current(st.site.session_life).await?;
    let wait = st.tickets.life.waiting.as_secs();
    if let Some(key) = session.existing_browser_key().await? {
        st.limits.tickets_per_browser.check(&key).await?;
        let cap = st.limits.live_tickets_per_browser;
        if cap > 0 && st.tickets.count_live(&key).await? >= cap {
            return Err(AppError::new(ErrorCode::RateLimited).retry_after(wait));
        }
    }
    // The ceiling over everyone: what bounds a flood from many addresses.
    let ceiling = st.limits.max_live_tickets;
    if ceiling > 0 && st.tickets.count_all_live_recent().await? >= ceiling {
        tracing::warn!(ceiling, "live-ticket ceiling reached");
        return Err(AppError::new(ErrorCode::Busy).retry_after(wait.min(30)));
    }
    // The code first (ready in the pool, else made now): when WeChat fails, nothing has
    // been stored.
    let (id, code) = st.codes.take().await?;
    let browser_key = session.browser_key().await?;
    let finalize_key = tokens::new_finalize_key();
    let now = st.tickets.now();
    let hash = TokenHash::of(finalize_key.as_str());
    let next = next.unwrap_or_default();
    let handoff = crate::server::handoff::Handoff::from_login(Some(next.clone()), false);
    let client = match &st.oidc {
        Some(p) => p.client_name(&handoff).await,
        None => None,
    };
    let mut ticket = Ticket::new(id, browser_key, hash, next, who, now, st.tickets.life);
    ticket.client_name = client.clone();
    st.tickets.insert(&ticket).await?;
    metrics::counter!("scanlogin_tickets_created_total").increment(1);
    let open_link = st.open_links.for_ticket(&ticket.id).await;
    Ok(TicketIssued { expires_in: ticket.expires_in(now), ticket: ticket.id, qr: code.data_url(), finalize_key, client, open_link })
}

/// Long-polls a ticket's status: answers when its version exceeds `seen`, when it
/// expires, or after the long-poll's length.
#[server(prefix = "/api", endpoint = "login/status", input = Json, output = Json)]
#[middleware(crate::server::http::api::SAME_SITE)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn login_status(ticket: TicketId, seen: u64) -> Result<StatusView, AppError> {
    // Runs without the session layer (see `server::http::router`): the binding key comes from
    // the store. A browser without one cannot own any ticket: `ticket_not_found`. Only
    // what the wait needs is kept across it.
    let (tickets, key, wait) = {
        let st = AppState::current()?;
        let parts = use_context::<axum::http::request::Parts>().ok_or_else(|| AppError::internal("no request parts"))?;
        let key = st.sessions.browser_key_in(&parts.headers, st.site.cookie_name).await?;
        (st.tickets.clone(), key.ok_or(ErrorCode::TicketNotFound)?, st.site.longpoll)
    };
    let t = tickets.follow(&ticket, &key, seen, wait).await?;
    Ok(StatusView {
        status: t.status,
        version: t.version,
        expires_in: t.expires_in(tickets.now()),
        number: t.match_number.filter(|_| t.status == crate::model::TicketStatus::Scanned),
        reason: t.cancelled_by_numbers().then(|| ErrorCode::WrongNumber.name()),
    })
}

/// Turns a confirmed ticket into a signed-in session (`server::signin::finalize`). Needs
/// the ticket's finalize key; a repeat within a minute (the first answer was lost)
/// signs the same browser in again.
#[server(prefix = "/api", endpoint = "login/finalize", input = Json, output = Json)]
#[middleware(crate::server::http::api::SAME_SITE)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn finalize_login(ticket: TicketId, finalize_key: Option<FinalizeKey>) -> Result<Finalized, AppError> {
    let st = AppState::current()?;
    let session = WebSession::current(st.site.session_life).await?;
    let who = Caller::current(&st).await?;
    let answer = crate::server::signin::finalize(&st, &session, &who, &ticket, finalize_key).await?;
    if let Some(cookie) = answer.forward_auth_cookie
        && let Ok(v) = axum::http::HeaderValue::from_str(&cookie)
    {
        expect_context::<leptos_axum::ResponseOptions>().append_header(axum::http::header::SET_COOKIE, v);
    }
    Ok(answer.finalized)
}

/// The signed-in user, their recent logins and their signed-in browsers.
#[server(prefix = "/api", endpoint = "me", input = Json, output = Json)]
#[middleware(crate::server::http::api::SAME_SITE)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn me() -> Result<MeView, AppError> {
    use crate::model::{EventView, LoginView, SessionView, UserView};
    use crate::server::clock::rfc3339;
    use crate::server::display::{describe_browser, mask_openid};
    use crate::server::error::current_lang;

    let st = AppState::current()?;
    let session = WebSession::current(st.site.session_life).await?;
    let now = st.clock.now();
    let Some(signed_in) = session.signed_in(now, st.site.session_absolute).await? else {
        return Err(ErrorCode::Unauthenticated.into());
    };
    // Through the cache, which is exact (every change forgets the user on every instance).
    let Some(user) = st.users.cached(signed_in.user).await? else {
        session.sign_out().await?;
        return Err(ErrorCode::Unauthenticated.into());
    };
    let crate::server::account::Overview { logins, events, sessions } =
        crate::server::account::overview(&st.db, user.id, now, 10, 20).await?;
    let current = session.id().map(|id| crate::server::session::stored_key(&id));
    let apps = match &st.oidc {
        Some(p) => p
            .store
            .consents(user.id)
            .await?
            .into_iter()
            .map(|(client, at)| {
                let name = p.clients.get(&client).map(|c| c.name.clone()).unwrap_or_else(|| client.clone());
                crate::model::AppView { client, name, since: rfc3339(at) }
            })
            .collect(),
        None => Vec::new(),
    };
    let unknown = current_lang().ui().unknown_browser;
    Ok(MeView {
        user: UserView {
            picture: user.picture(&st.site.public_url),
            email: user.email.clone(),
            id: user.id,
            name: user.name,
            openid_masked: mask_openid(&user.openid),
            created_at: rfc3339(user.created_at),
            status: user.status,
            admin: user.admin,
            groups: user.groups,
        },
        recent_logins: logins
            .into_iter()
            .map(|l| LoginView {
                at: rfc3339(l.at),
                ip: l.ip,
                browser: describe_browser(&l.user_agent).unwrap_or_else(|| unknown.to_string()),
            })
            .collect(),
        sessions: sessions
            .into_iter()
            .map(|s| SessionView {
                current: current.as_deref() == Some(s.key.as_str()),
                browser: describe_browser(&s.signed_in.user_agent).unwrap_or_else(|| unknown.to_string()),
                ip: s.signed_in.ip,
                signed_in_at: rfc3339(s.signed_in.login_at),
                last_seen: rfc3339(s.signed_in.seen_at),
            })
            .collect(),
        events: events
            .into_iter()
            .map(|e| EventView {
                at: rfc3339(e.at),
                kind: e.kind,
                ip: e.ip,
                browser: describe_browser(&e.user_agent).unwrap_or_else(|| unknown.to_string()),
                detail: e.detail,
            })
            .collect(),
        apps,
    })
}

/// Ends the session: the session row is removed outright, the cookie cleared. Always
/// 200: a store failure is logged, and the browser forgets its cookie either way.
#[server(prefix = "/api", endpoint = "logout", input = Json, output = Json)]
#[middleware(crate::server::http::api::SAME_SITE)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn logout() -> Result<Empty, AppError> {
    let st = AppState::current()?;
    let session = WebSession::current(st.site.session_life).await?;
    // Logging out never fails for want of the caller's address (it is only recorded).
    let caller = Caller::current(&st).await.unwrap_or_else(|_| Caller::unknown());
    crate::server::signin::sign_out(&st, &session, &caller).await;
    Ok(Empty {})
}

/// Signs the user out of every other browser (退出其他设备).
#[server(prefix = "/api", endpoint = "sessions/revoke-others", input = Json, output = Json)]
#[middleware(crate::server::http::api::SAME_SITE)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn revoke_other_sessions() -> Result<Revoked, AppError> {
    let st = AppState::current()?;
    let session = WebSession::current(st.site.session_life).await?;
    let caller = Caller::current(&st).await?;
    let revoked = crate::server::signin::revoke_others(&st, &session, &caller).await?;
    Ok(Revoked { revoked })
}
