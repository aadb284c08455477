//! What each endpoint of docs/api.md does on the server. The server functions in
//! `crate::api` are thin wrappers around these.

use crate::error::{AppError, ErrorCode};
use crate::model::*;
use crate::server::clock::rfc3339;
use crate::server::rules::{self, DEFAULT_NEXT};
use crate::server::session::WebSession;
use crate::server::state::AppState;
use crate::server::tickets::{Origin, Ticket};
use crate::server::users;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use leptos::prelude::use_context;
use std::net::{IpAddr, SocketAddr};

/// Who is calling: IP and user agent of the request being served.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Client IP (the socket's peer).
    pub ip: String,
    /// User-Agent, truncated to 300 characters.
    pub user_agent: String,
}

/// The client behind trusted proxies: the rightmost `X-Forwarded-For` entry that is not
/// itself a trusted proxy (entries further left are whatever the client claimed).
pub fn forwarded_client(headers: &axum::http::HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    hops.into_iter().rev().find(|ip| !trusted.contains(ip))
}

/// Reads the caller from a request. The socket's peer is the client, unless it is a
/// trusted proxy: then `X-Forwarded-For` says who is behind it.
pub fn caller_of(parts: &Parts, trusted: &[IpAddr]) -> Caller {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let ip = match peer {
        Some(p) if trusted.contains(&p) => forwarded_client(&parts.headers, trusted).unwrap_or(p).to_string(),
        Some(p) => p.to_string(),
        None => "unknown".into(),
    };
    let user_agent = parts
        .headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect();
    Caller { ip, user_agent }
}

fn caller(st: &AppState) -> Caller {
    use_context::<Parts>()
        .map(|p| caller_of(&p, &st.site.trusted_proxies))
        .unwrap_or(Caller { ip: "unknown".into(), user_agent: String::new() })
}

fn state() -> Result<AppState, AppError> {
    use_context::<AppState>().ok_or_else(|| AppError::internal("AppState missing from context"))
}

fn db_err(e: sqlx::Error) -> AppError {
    AppError::internal(format!("database: {e}"))
}

fn plausible_ticket(id: &str) -> Result<(), AppError> {
    if rules::is_plausible_ticket_id(id) { Ok(()) } else { Err(ErrorCode::BadRequest.into()) }
}

/// `POST /api/login/ticket`.
pub async fn create_ticket(next: Option<String>) -> Result<TicketIssued, AppError> {
    let st = state()?;
    let next = match next.as_deref() {
        None => DEFAULT_NEXT.to_string(),
        Some(n) => rules::validate_next(n).ok_or_else(|| AppError::new(ErrorCode::BadRequest))?.to_string(),
    };
    let who = caller(&st);
    st.limits.tickets_per_ip.check(&who.ip)?;
    let session = WebSession::current().await?;
    if let Some(key) = session.existing_browser_key().await? {
        st.limits.tickets_per_browser.check(&key)?;
        let cap = st.limits.live_tickets_per_browser;
        if cap > 0 && st.tickets.count_live(&key).await? >= cap {
            return Err(AppError::new(ErrorCode::RateLimited).retry_after(st.tickets.life.waiting_ms as u64 / 1000));
        }
    }
    let id = rules::new_ticket_id();
    // The code first: when WeChat fails, nothing has been stored.
    let code = st.wechat.mini_program_code(&id).await?;
    let browser_key = session.browser_key().await?;
    let now = st.tickets.now();
    let ticket = Ticket::new(id, browser_key, next, Origin { ip: who.ip, user_agent: who.user_agent }, now, st.tickets.life);
    st.tickets.insert(&ticket).await?;
    Ok(TicketIssued { expires_in: ticket.expires_in(now), ticket: ticket.id, qr: code.data_url() })
}

/// The session and its binding key; a browser without a key cannot own any ticket, so
/// it gets `ticket_not_found` (and no session is created for it).
async fn bound_session() -> Result<(WebSession, String), AppError> {
    let session = WebSession::current().await?;
    match session.existing_browser_key().await? {
        Some(key) => Ok((session, key)),
        None => Err(ErrorCode::TicketNotFound.into()),
    }
}

/// `POST /api/login/status` (long-poll).
pub async fn status(ticket: String, seen: u64) -> Result<StatusView, AppError> {
    plausible_ticket(&ticket)?;
    let st = state()?;
    let (_, key) = bound_session().await?;
    let seen = i64::try_from(seen).unwrap_or(i64::MAX);
    let t = st.tickets.follow(&ticket, &key, seen, st.site.longpoll).await?;
    Ok(StatusView { status: t.status, version: t.version as u64, expires_in: t.expires_in(st.tickets.now()) })
}

/// `POST /api/login/finalize`: session id cycled, user stored, session saved, then the
/// ticket consumed by a conditional write, then the login recorded.
pub async fn finalize(ticket: String) -> Result<Finalized, AppError> {
    plausible_ticket(&ticket)?;
    let st = state()?;
    let (session, key) = bound_session().await?;
    let Some(current) = st.tickets.load(&ticket).await? else {
        return Err(ErrorCode::TicketNotFound.into());
    };
    let now = st.tickets.now();
    let mut consumed = current.clone();
    consumed.consume(&key, now)?;
    let user = current.scanner_id.ok_or_else(|| AppError::internal("confirmed ticket without scanner"))?;
    let who = caller(&st);
    session.sign_in(user, now, &who.ip, &who.user_agent).await?;
    // Not consumed (a store error, or a change in between): re-read what it is now.
    let after = match st.tickets.commit(&consumed, current.version).await {
        Ok(true) => None,
        Ok(false) => Some(st.tickets.load(&ticket).await),
        Err(e) => Some(Err(e)),
    };
    if let Some(after) = after {
        // Only this browser can consume its ticket: if a parallel finalize of ours won,
        // this session stays signed in too (whichever cookie the browser keeps works),
        // and the answer is still `ticket_used`. Anything else: undo the sign-in.
        if let Ok(Some(t)) = &after
            && t.status == TicketStatus::Consumed
            && t.is_bound_to(&key)
        {
            return Err(ErrorCode::TicketUsed.into());
        }
        session.undo_sign_in().await?;
        let err = match after? {
            Some(mut t) => t.consume(&key, now).err().map(ErrorCode::from).unwrap_or(ErrorCode::TicketUsed),
            None => ErrorCode::TicketNotFound,
        };
        return Err(err.into());
    }
    if let Err(e) = users::record_login(&st.db, user, now, &who.ip, &who.user_agent, &ticket).await {
        tracing::error!(error = %e, "login succeeded but could not be recorded");
    }
    tracing::info!(user, "signed in");
    Ok(Finalized { next: consumed.next })
}

/// `POST /api/me`.
pub async fn me() -> Result<MeView, AppError> {
    let st = state()?;
    let session = WebSession::current().await?;
    let Some(id) = session.user_id(st.clock.now_ms(), st.site.session_absolute_ms).await? else {
        return Err(ErrorCode::Unauthenticated.into());
    };
    let Some(user) = users::get(&st.db, id).await.map_err(db_err)? else {
        session.sign_out().await?;
        return Err(ErrorCode::Unauthenticated.into());
    };
    let logins = users::recent_logins(&st.db, id, 10).await.map_err(db_err)?;
    let current = session.id();
    let sessions = st.sessions.list_for_user(id, st.clock.now_ms()).await.map_err(db_err)?;
    Ok(MeView {
        user: UserView {
            id: user.id,
            name: user.name,
            openid_masked: rules::mask_openid(&user.openid),
            created_at: rfc3339(user.created_at),
        },
        recent_logins: logins
            .into_iter()
            .map(|l| LoginView { at: rfc3339(l.at), ip: l.ip, browser: rules::describe_browser(&l.user_agent) })
            .collect(),
        sessions: sessions
            .into_iter()
            .map(|s| SessionView {
                current: current.as_deref() == Some(s.id.as_str()),
                browser: rules::describe_browser(&s.user_agent),
                ip: s.ip,
                signed_in_at: rfc3339(s.login_at),
                last_seen: rfc3339(s.seen_at),
            })
            .collect(),
    })
}

/// `POST /api/sessions/revoke-others`: signs the user out everywhere but here.
pub async fn revoke_other_sessions() -> Result<Revoked, AppError> {
    let st = state()?;
    let session = WebSession::current().await?;
    let Some(user) = session.user_id(st.clock.now_ms(), st.site.session_absolute_ms).await? else {
        return Err(ErrorCode::Unauthenticated.into());
    };
    let keep = session.id().ok_or_else(|| AppError::internal("signed-in session without id"))?;
    let revoked = st.sessions.delete_others(user, &keep).await.map_err(db_err)?;
    tracing::info!(user, revoked, "signed out other browsers");
    Ok(Revoked { revoked })
}

/// `POST /api/logout`: the session row is removed outright, the cookie cleared.
pub async fn logout() -> Result<Empty, AppError> {
    let st = state()?;
    let session = WebSession::current().await?;
    let id = session.id();
    session.sign_out().await?;
    if let Some(id) = id {
        st.sessions.remove(&id).await.map_err(db_err)?;
    }
    Ok(Empty {})
}

fn phone_token(token: &str) -> Result<String, AppError> {
    if token.is_empty() || token.len() > 64 {
        return Err(ErrorCode::BadRequest.into());
    }
    Ok(rules::hash_token(token))
}

/// `POST /api/mp/scan`.
pub async fn scan(ticket: String, code: String) -> Result<ScanAnswer, AppError> {
    plausible_ticket(&ticket)?;
    if code.is_empty() || code.len() > 128 {
        return Err(ErrorCode::BadRequest.into());
    }
    let st = phone_state(&ticket)?;
    let Some(current) = st.tickets.load(&ticket).await? else {
        return Err(ErrorCode::TicketNotFound.into());
    };
    let life = st.tickets.life;
    // Refuse what cannot succeed before spending the single-use code.
    if current.status.is_final() {
        current.clone().scan(0, String::new(), st.tickets.now(), life)?;
    }
    let who = st.wechat.code_to_session(&code).await?;
    // Check the transition with the user as known so far, so that a refused scan (a
    // second WeChat user) creates no account.
    let known = users::find(&st.db, &who).await.map_err(db_err)?;
    current.clone().scan(known.as_ref().map_or(-1, |u| u.id), String::new(), st.tickets.now(), life)?;
    let user = users::find_or_create(&st.db, &who, st.clock.now_ms()).await.map_err(db_err)?;
    let confirm_token = rules::random_token(24);
    let hash = rules::hash_token(&confirm_token);
    let (t, ()) = st.tickets.update(&ticket, |t, now| t.scan(user.id, hash.clone(), now, life)).await?;
    Ok(ScanAnswer {
        status: t.status,
        confirm_token,
        requester: Requester {
            site: st.site.host.clone(),
            browser: rules::describe_browser(&t.origin.user_agent),
            ip: t.origin.ip.clone(),
            created_at: rfc3339(t.created_at),
        },
    })
}

/// The state, after the phone endpoints' rate limits (per client IP, per ticket).
fn phone_state(ticket: &str) -> Result<AppState, AppError> {
    let st = state()?;
    st.limits.phone_per_ip.check(&caller(&st).ip)?;
    st.limits.phone_per_ticket.check(ticket)?;
    Ok(st)
}

/// `POST /api/mp/confirm`.
pub async fn confirm(ticket: String, confirm_token: String) -> Result<PhoneAnswer, AppError> {
    plausible_ticket(&ticket)?;
    let hash = phone_token(&confirm_token)?;
    let (t, ()) = phone_state(&ticket)?.tickets.update(&ticket, |t, now| t.confirm(&hash, now)).await?;
    Ok(PhoneAnswer { status: t.status })
}

/// `POST /api/mp/cancel`.
pub async fn cancel(ticket: String, confirm_token: String) -> Result<PhoneAnswer, AppError> {
    plausible_ticket(&ticket)?;
    let hash = phone_token(&confirm_token)?;
    let (t, ()) = phone_state(&ticket)?.tickets.update(&ticket, |t, now| t.cancel(&hash, now)).await?;
    Ok(PhoneAnswer { status: t.status })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_read_from_the_right_past_trusted_hops() {
        let mut h = axum::http::HeaderMap::new();
        h.append("x-forwarded-for", "6.6.6.6, 1.2.3.4".parse().unwrap());
        h.append("x-forwarded-for", "10.0.0.2".parse().unwrap());
        let trusted: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap()];
        assert_eq!(forwarded_client(&h, &trusted), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(forwarded_client(&axum::http::HeaderMap::new(), &trusted), None);
    }
}
