//! The periodic upkeep of every subsystem, one task per instance: each subsystem offers
//! its own purge of what has expired at `now`, and this loop calls them in turn. A
//! failure is logged and the next round tries again; nothing here ever stops the server.

use crate::domain::UnixMillis;
use crate::server::state::AppState;
use std::time::Duration;

/// How often the upkeep runs and how long finished things are kept.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Between rounds.
    pub every: Duration,
    /// Finished and expired tickets are kept this long (a late status call still gets
    /// their final state).
    pub ticket_grace: Duration,
    /// Audit events are kept this long.
    pub audit_retention: Duration,
}

/// Runs the upkeep every `schedule.every`, for ever.
pub async fn run(state: AppState, schedule: Schedule) {
    let mut tick = tokio::time::interval(schedule.every);
    loop {
        tick.tick().await;
        purge(&state, schedule, state.clock.now()).await;
    }
}

/// One round: what each subsystem no longer needs at `now`.
pub async fn purge(state: &AppState, schedule: Schedule, now: UnixMillis) {
    match state.tickets.purge(now.minus(schedule.ticket_grace)).await {
        Ok(n) if n > 0 => tracing::debug!(tickets = n, "purged"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "ticket purge failed"),
    }
    if let Err(e) = state.sessions.delete_expired(now).await {
        tracing::warn!(error = %e, "session purge failed");
    }
    state.limits.forget_idle();
    if let Err(e) = state.limits.purge_shared(now).await {
        tracing::warn!(error = %e, "rate-limit purge failed");
    }
    if let Err(e) = state.codes.purge(now).await {
        tracing::warn!(error = %e, "code pool purge failed");
    }
    if let Err(e) = state.audit.purge(now.minus(schedule.audit_retention)).await {
        tracing::warn!(error = %e, "audit purge failed");
    }
    if let Err(e) = crate::server::people::purge(state, now).await {
        tracing::warn!(error = %e, "setup-link purge failed");
    }
    if let Err(e) = crate::server::phone::purge(state, now).await {
        tracing::warn!(error = %e, "phone-login purge failed");
    }
    if let Err(e) = crate::server::email::purge(state, now).await {
        tracing::warn!(error = %e, "email-link purge failed");
    }
    if let Some(p) = &state.oidc {
        if let Err(e) = p.purge(now).await {
            tracing::warn!(error = %e, "oidc purge failed");
        }
        if let Err(e) = p.keys.ensure(now, p.rotate).await {
            tracing::warn!(error = %e, "oidc key rotation failed");
        }
        if let Err(e) = p.keys.retire(now, p.hint_max_age).await {
            tracing::warn!(error = %e, "oidc key retirement failed");
        }
    }
}
