//! Signing in (a confirmed ticket becomes a signed-in session) and out. One
//! implementation each for the page's calls and for the forms a browser without
//! JavaScript submits.

use crate::domain::{FinalizeKey, TicketId};
use crate::error::{AppError, ErrorCode};
use crate::model::Finalized;
use crate::server::audit::Kind;
use crate::server::caller::Caller;
use crate::server::session::{SignedIn, WebSession};
use crate::server::state::AppState;
use crate::server::tickets::{Finalize, FinalizeAttempt};
use crate::server::tokens::TokenHash;

/// What a finalize answers: where to go, and (with `COOKIE_DOMAIN`) the forward-auth
/// cookie the answer must set beside the session's own.
#[derive(Debug)]
pub struct SignedInAnswer {
    pub finalized: Finalized,
    pub forward_auth_cookie: Option<String>,
}

/// Turns a confirmed ticket into a signed-in session: session id and binding key
/// rotated, user stored, session saved, then the ticket consumed by a conditional write,
/// then the login recorded. Needs the ticket's finalize key; a repeat within a minute
/// (the first answer was lost) signs the same browser in again.
pub async fn finalize(
    st: &AppState,
    session: &WebSession,
    who: &Caller,
    ticket: &TicketId,
    finalize_key: Option<FinalizeKey>,
) -> Result<SignedInAnswer, AppError> {
    let started = std::time::Instant::now();
    let now = st.tickets.now();
    let key = session.existing_browser_key().await?;
    let signed_in_as = session.signed_in(now, st.site.session_absolute).await?.map(|s| s.user);
    let key_hash = finalize_key.map(|k| TokenHash::of(k.as_str()));
    let attempt = FinalizeAttempt { browser_key: key.as_deref(), signed_in_as, key_hash: key_hash.as_ref() };
    let (current, decision) = st.tickets.decide(ticket, |t| t.finalize_check(&attempt, now)).await?;
    let user = current.scanner_id.ok_or_else(|| AppError::internal("confirmed ticket without scanner"))?;
    // Disabled between the confirm and now: no session.
    if st.users.cached(user).await?.is_none_or(|u| u.status == crate::domain::UserStatus::Disabled) {
        return Err(ErrorCode::AccountDisabled.into());
    }
    let next = Finalized { next: current.next.to_string() };
    let site = current.client_name.clone().unwrap_or_default();
    let signed_in = SignedIn { user, login_at: now, seen_at: now, ip: who.ip_text(), user_agent: who.user_agent.clone() };
    if decision == Finalize::Repeat {
        let mut fa_cookie = None;
        if signed_in_as != Some(user) {
            session.sign_in(&signed_in).await?;
            fa_cookie = forward_auth_cookie(st, session, &signed_in).await?;
            st.audit.record(now, Kind::SignIn, Some(user), who, &format!("{site} (repeat after a lost answer)")).await;
        }
        tracing::info!(user = %user, "signed in again after a lost finalize answer");
        return Ok(SignedInAnswer { finalized: next, forward_auth_cookie: fa_cookie });
    }
    session.sign_in(&signed_in).await?;
    let fa_cookie = forward_auth_cookie(st, session, &signed_in).await?;
    let mut consumed = current.clone();
    consumed.consume(&attempt, now)?;
    match st.tickets.commit(&consumed, current.version).await {
        Ok(true) => {}
        lost => {
            // Not consumed: a store error, or a change in between. When a parallel
            // finalize of this same page won, this is a repeat and this session stays
            // signed in too; anything else undoes the sign-in first.
            let after = match lost {
                Ok(_) => st.tickets.load_stored(ticket).await,
                Err(e) => Err(e),
            };
            let again = FinalizeAttempt { signed_in_as: Some(user), ..attempt };
            if let Ok(Some(t)) = &after
                && t.finalize_check(&again, now) == Ok(Finalize::Repeat)
            {
                return Ok(SignedInAnswer { finalized: next, forward_auth_cookie: fa_cookie });
            }
            session.undo_sign_in().await?;
            return Err(match after? {
                Some(t) => t.finalize_check(&attempt, now).err().map(ErrorCode::from).unwrap_or(ErrorCode::TicketUsed).into(),
                None => ErrorCode::TicketNotFound.into(),
            });
        }
    }
    // The person confirmed on the phone a login that named this site: that is their
    // consent to it (and to no other).
    if let (Some(p), Some(request)) =
        (&st.oidc, crate::server::handoff::Handoff::from_login(Some(current.next.clone()), false).oidc_request())
        && let Ok(Some(client)) = p.store.request_client(request).await
        && let Err(e) = p.store.grant_consent(user, &client, now).await
    {
        tracing::error!(error = %e, "the site's consent could not be recorded (the person will be asked)");
    }
    st.audit.record_sign_in(now, user, who, &site, ticket).await;
    tracing::info!(user = %user, "signed in");
    metrics::counter!("scanlogin_signins_total").increment(1);
    metrics::histogram!("scanlogin_finalize_seconds").record(started.elapsed().as_secs_f64());
    Ok(SignedInAnswer { finalized: next, forward_auth_cookie: fa_cookie })
}

/// Ends the session: recorded in the audit trail, the session row removed outright, the
/// cookie cleared. Never fails: a store failure is logged, and the browser forgets its
/// cookie either way.
pub async fn sign_out(st: &AppState, session: &WebSession, caller: &Caller) {
    let id = session.id();
    let now = st.clock.now();
    if let Ok(Some(who)) = session.signed_in(now, st.site.session_absolute).await {
        st.audit.record(now, Kind::Logout, Some(who.user), caller, "").await;
    }
    if let Err(e) = session.sign_out().await {
        tracing::error!(error = ?e, "logout: the session could not be cleared");
    }
    if let Some(id) = id {
        if let Err(e) = st.sessions.remove(&id).await {
            tracing::error!(error = %e, "logout: the session row could not be removed");
        }
        // What the session authorized at other sites ends with it.
        if let Some(p) = &st.oidc
            && let Err(e) = p.store.revoke_session(&crate::server::session::stored_key(&id)).await
        {
            tracing::error!(error = %e, "logout: the session's OIDC tokens could not be revoked");
        }
    }
}

/// Signs the user out of every other browser (退出其他设备), recorded in the audit
/// trail; the number of browsers signed out. One implementation for the API and the
/// account page's form.
pub async fn revoke_others(st: &AppState, session: &WebSession, caller: &Caller) -> Result<u64, AppError> {
    let Some(signed_in) = session.signed_in_now(st).await? else {
        return Err(ErrorCode::Unauthenticated.into());
    };
    let keep = session.id().ok_or_else(|| AppError::internal("signed-in session without id"))?;
    let revoked = st.sessions.delete_others(signed_in.user, &keep).await?;
    if let Some(p) = &st.oidc {
        p.store.revoke_other_sessions(signed_in.user, &crate::server::session::stored_key(&keep)).await?;
    }
    tracing::info!(user = %signed_in.user, revoked, "signed out other browsers");
    st.audit.record(st.clock.now(), Kind::RevokeOthers, Some(signed_in.user), caller, &revoked.to_string()).await;
    Ok(revoked)
}

/// With `COOKIE_DOMAIN`: a forward-auth session linked to the one just signed in, and its
/// cookie (`Domain=COOKIE_DOMAIN`) on the answer, beside the session's own host-only cookie.
/// The apps under the domain receive only this one, which `/auth/verify` alone accepts:
/// replayed at scanlogin it signs nobody in.
async fn forward_auth_cookie(st: &AppState, session: &WebSession, who: &SignedIn) -> Result<Option<String>, AppError> {
    let (Some(name), Some(domain)) = (st.site.forward_auth_cookie, st.site.cookie_domain.as_deref()) else { return Ok(None) };
    let parent = session.id().ok_or_else(|| AppError::internal("a signed-in session without id"))?;
    let life = st.site.session_life.signed_in;
    let expires = st.clock.now().plus(life);
    let id = st.sessions.create_linked(&parent, who, expires).await?;
    let secure = if st.site.secure { "; Secure" } else { "" };
    Ok(Some(format!("{name}={id}; Domain={domain}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}", life.as_secs())))
}
