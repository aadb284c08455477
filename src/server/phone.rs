//! The mini program's own login (the seed's 自定义登录态) and what it is for: the person's
//! list of signed-in browsers on their phone (「我的网页登录」), each signed out with a tap.
//!
//! One `wx.login` gives the phone an opaque token (192 bits; only its SHA-256 is stored,
//! in `phone_sessions`) for [`PHONE_SESSION_DAYS`] days; the mini program keeps it in
//! storage and renews it (`mp/renew`: a new token, the old one ends) before it expires.
//! Only a person who already has an account gets one (signing up happens at a scan,
//! under the sign-up rules), and every call checks the account: a disabled person's
//! tokens are deleted when they are disabled, and refused meanwhile anyway.
//!
//! Signing a browser out from here is what the browser's own logout does: its session
//! row goes (with the forward-auth sessions linked to it), which every instance hears at
//! once (the sessions trigger on PostgreSQL), and the OIDC tokens it authorized end.

use crate::domain::{UnixMillis, UserId};
use crate::error::{AppError, ErrorCode};
use crate::model::{BrowserSession, PhoneLogin};
use crate::server::audit::Kind;
use crate::server::caller::Caller;
use crate::server::clock::rfc3339;
use crate::server::session::SessionKey;
use crate::server::state::AppState;
use crate::server::tokens::{TokenHash, random_token};
use crate::server::users::User;
use std::time::Duration;

/// How long a phone token lives.
pub const PHONE_SESSION_DAYS: i64 = 30;
const LIFE: Duration = Duration::from_secs(PHONE_SESSION_DAYS as u64 * 86_400);
/// The longest token we read (ours are 32 characters).
const MAX_TOKEN: usize = 64;

/// A new token for `user`.
async fn issue(st: &AppState, user: &User) -> Result<PhoneLogin, AppError> {
    let token = random_token(24);
    let now = st.clock.now();
    sqlx::query("INSERT INTO phone_sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(TokenHash::of(&token).as_str())
        .bind(user.id)
        .bind(now)
        .bind(now.plus(LIFE))
        .execute(&st.db)
        .await?;
    Ok(PhoneLogin { token, expires_in: LIFE.as_secs(), name: user.name.clone() })
}

/// `mp/login`: the WeChat user of a `wx.login` code, if they have an account that may sign
/// in, gets a token. Unknown: 404 `user_not_found`; disabled: 403 `account_disabled`.
pub async fn login(st: &AppState, caller: &Caller, code: &str) -> Result<PhoneLogin, AppError> {
    st.limits.phone_per_ip.check(&crate::server::limits::client_bucket(caller.ip)).await?;
    let who = st.wechat.code_to_session(code).await?;
    let Some(user) = st.users.find(&who).await? else { return Err(ErrorCode::UserNotFound.into()) };
    if let Some(refusal) = crate::server::people::phone_refusal(&user) {
        st.audit.record(st.clock.now(), Kind::ScanRefused, Some(user.id), caller, &format!("phone login: {}", refusal.name())).await;
        return Err(refusal.into());
    }
    issue(st, &user).await
}

/// The person a phone token belongs to: 401 `unauthenticated` for an unknown, expired or
/// malformed token; 403 `account_disabled` for a disabled person.
pub async fn user_of(st: &AppState, token: &str) -> Result<User, AppError> {
    if token.is_empty() || token.len() > MAX_TOKEN {
        return Err(ErrorCode::Unauthenticated.into());
    }
    let row: Option<(UserId,)> = sqlx::query_as("SELECT user_id FROM phone_sessions WHERE token_hash = $1 AND expires_at > $2")
        .bind(TokenHash::of(token).as_str())
        .bind(st.clock.now())
        .fetch_optional(&st.db)
        .await?;
    let Some((id,)) = row else { return Err(ErrorCode::Unauthenticated.into()) };
    let user = st.users.cached(id).await?.ok_or(ErrorCode::Unauthenticated)?;
    match crate::server::people::phone_refusal(&user) {
        Some(refusal) => Err(refusal.into()),
        None => Ok(user),
    }
}

/// `mp/renew`: a new token for `user`, the holder of `token`, which ends.
pub async fn renew(st: &AppState, user: &User, token: &str) -> Result<PhoneLogin, AppError> {
    let fresh = issue(st, user).await?;
    sqlx::query("DELETE FROM phone_sessions WHERE token_hash = $1").bind(TokenHash::of(token).as_str()).execute(&st.db).await?;
    Ok(fresh)
}

/// The person's signed-in browsers, most recently seen first, with the sites each
/// signed in to (for the phone and for the admin console).
pub async fn web_sessions(st: &AppState, user: UserId) -> Result<Vec<BrowserSession>, AppError> {
    use crate::server::display::describe_browser;
    let now = st.clock.now();
    let unknown = crate::server::error::current_lang().ui().unknown_browser;
    let mut list = Vec::new();
    for s in st.sessions.list_for_user(user, now).await? {
        let mut sites = match &st.oidc {
            Some(p) => p
                .store
                .session_clients(&s.key, now)
                .await?
                .into_iter()
                .map(|c| p.clients.get(&c).map(|c| c.name.clone()).unwrap_or(c))
                .collect(),
            None => Vec::new(),
        };
        if st.sessions.has_linked(&s.key).await? {
            sites.push("forward-auth".to_string());
        }
        list.push(BrowserSession {
            browser: describe_browser(&s.signed_in.user_agent).unwrap_or_else(|| unknown.to_string()),
            ip: s.signed_in.ip,
            signed_in_at: rfc3339(s.signed_in.login_at),
            last_seen: rfc3339(s.signed_in.seen_at),
            sites,
            id: s.key.as_str().to_string(),
        });
    }
    Ok(list)
}

/// Ends one browser session of `user` (the id `web_sessions` lists): its row and linked
/// forward-auth sessions go (every instance hears it), and the OIDC tokens it authorized
/// end. 404 `not_found` when it is not one of theirs, nothing changed.
pub async fn end_browser(st: &AppState, user: UserId, session: &str) -> Result<(), AppError> {
    let Some(session) = SessionKey::parse(session) else { return Err(ErrorCode::NotFound.into()) };
    if !st.sessions.remove_for_user(user, &session).await? {
        return Err(ErrorCode::NotFound.into());
    }
    if let Some(p) = &st.oidc {
        p.store.revoke_session(&session).await?;
    }
    Ok(())
}

/// Signs one of the person's browsers out from the phone. Audited.
pub async fn sign_out(st: &AppState, user: &User, caller: &Caller, session: &str) -> Result<(), AppError> {
    end_browser(st, user.id, session).await?;
    tracing::info!(user = %user.id, "a browser signed out from the phone");
    st.audit.record(st.clock.now(), Kind::PhoneSignOut, Some(user.id), caller, "1").await;
    Ok(())
}

/// 全部退出: every browser of the person signed out; how many. Audited.
pub async fn sign_out_all(st: &AppState, user: &User, caller: &Caller) -> Result<u64, AppError> {
    let ended = st.sessions.list_for_user(user.id, st.clock.now()).await?.len() as u64;
    st.sessions.delete_user(user.id).await?;
    if let Some(p) = &st.oidc {
        p.store.revoke_user(user.id).await?;
    }
    tracing::info!(user = %user.id, ended, "every browser signed out from the phone");
    st.audit.record(st.clock.now(), Kind::PhoneSignOut, Some(user.id), caller, &format!("all: {ended}")).await;
    Ok(ended)
}

/// Ends every phone token of `user` (disabled).
pub async fn end_user(st: &AppState, user: UserId) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM phone_sessions WHERE user_id = $1").bind(user).execute(&st.db).await?.rows_affected())
}

/// Deletes expired tokens.
pub async fn purge(st: &AppState, now: UnixMillis) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM phone_sessions WHERE expires_at <= $1").bind(now).execute(&st.db).await?.rows_affected())
}
