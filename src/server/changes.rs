//! What other instances on the same PostgreSQL database change, heard through
//! `LISTEN` (all announced by triggers): ticket changes wake this instance's long-polls
//! (and take the ticket out of what it keeps in memory),
//! changed or deleted sessions leave its session cache, and changed users (disabled,
//! regrouped, renamed) its user cache.

use crate::server::session::SessionCache;
use crate::server::session::cache::PG_CHANNEL as SESSIONS;
use crate::server::tickets::store::{Notifier, PG_CHANNEL as TICKETS};
use crate::server::users::UserCache;

/// The channel the users trigger announces changed users on.
pub const USERS: &str = "scanlogin_users";
use std::sync::Arc;

/// Who is told of changes.
#[derive(Clone)]
pub struct Listeners {
    pub tickets: Arc<Notifier>,
    pub sessions: Arc<SessionCache>,
    pub users: Arc<UserCache>,
    /// This instance's name: changes it made itself it has acted on already (its
    /// long-polls woken, its session cache kept).
    pub instance: String,
}

/// Listens until the task is stopped, reconnecting by itself. While it is not
/// connected, the session and user caches and the kept tickets serve nothing (a change
/// could be missed), and a ticket change announced meanwhile is still answered, at the
/// long-poll's deadline.
pub async fn listen(url: String, to: Listeners) {
    loop {
        let Err(e) = relay(&url, &to).await;
        to.sessions.disarm();
        to.users.disarm();
        to.tickets.disarm();
        tracing::warn!(error = %e, "change listener lost its connection; reconnecting");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Relays notifications until the connection fails.
async fn relay(url: &str, to: &Listeners) -> Result<std::convert::Infallible, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen_all([TICKETS, SESSIONS, USERS]).await?;
    // Listening now: from here on no change is missed, so the caches may serve again.
    to.sessions.arm();
    to.users.arm();
    to.tickets.arm();
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
            USERS => {
                if let Ok(id) = id.parse() {
                    to.users.forget(crate::domain::UserId(id));
                }
            }
            _ => {}
        }
    }
}
