//! What other instances on the same PostgreSQL database change, heard through
//! `LISTEN` (both announced by triggers): ticket changes wake this instance's long-polls, and changed or deleted
//! sessions leave its session cache.

use crate::server::session::SessionCache;
use crate::server::session::cache::PG_CHANNEL as SESSIONS;
use crate::server::tickets::store::{Notifier, PG_CHANNEL as TICKETS};
use std::sync::Arc;

/// Who is told of changes.
#[derive(Clone)]
pub struct Listeners {
    pub tickets: Arc<Notifier>,
    pub sessions: Arc<SessionCache>,
    /// This instance's name: changes it made itself it has acted on already (its
    /// long-polls woken, its session cache kept).
    pub instance: String,
}

/// Listens until the task is stopped, reconnecting by itself. While it is not
/// connected, the session cache serves nothing (a revocation could be missed), and a
/// ticket change announced meanwhile is still answered, at the long-poll's deadline.
pub async fn listen(url: String, to: Listeners) {
    loop {
        let Err(e) = relay(&url, &to).await;
        to.sessions.disarm();
        tracing::warn!(error = %e, "change listener lost its connection; reconnecting");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Relays notifications until the connection fails.
async fn relay(url: &str, to: &Listeners) -> Result<std::convert::Infallible, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen_all([TICKETS, SESSIONS]).await?;
    // Listening now: from here on no change is missed, so the cache may serve again.
    to.sessions.arm();
    loop {
        let n = listener.recv().await?;
        // "<id> <instance>": what this instance changed itself, it has acted on already.
        let (id, origin) = n.payload().split_once(' ').unwrap_or((n.payload(), ""));
        if origin == to.instance {
            continue;
        }
        match n.channel() {
            TICKETS => to.tickets.wake(id),
            SESSIONS => to.sessions.forget(id),
            _ => {}
        }
    }
}
