//! Persistence of tickets: one seam ([`TicketStore`]) that the SQL store implements
//! today and a Redis store can implement later, change notification included.

use super::machine::{Origin, Ticket};
use crate::model::TicketStatus;
use async_trait::async_trait;
use sqlx::AnyPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// A storage failure (details are for the log).
#[derive(Debug, thiserror::Error)]
#[error("ticket store: {0}")]
pub struct StoreError(pub String);

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// Wakes whoever follows a ticket when it changes, carrying the ticket as written (so a
/// woken follower need not read it back from the store).
pub type TicketWatch = watch::Receiver<Option<Ticket>>;

/// Where tickets live.
#[async_trait]
pub trait TicketStore: Send + Sync + 'static {
    /// Stores a new ticket.
    async fn insert(&self, ticket: &Ticket) -> Result<(), StoreError>;
    /// Loads a ticket.
    async fn get(&self, id: &str) -> Result<Option<Ticket>, StoreError>;
    /// Writes `ticket` only if the stored version is still `expected_version`, then
    /// notifies watchers. `false` when someone else changed it first.
    async fn replace(&self, ticket: &Ticket, expected_version: i64) -> Result<bool, StoreError>;
    /// How many tickets of one browser are alive (not final, not past expiry) at `now`.
    async fn count_live(&self, browser_key: &str, now: i64) -> Result<i64, StoreError>;
    /// Deletes tickets that expired or finished before `before` (epoch ms).
    async fn purge(&self, before: i64) -> Result<u64, StoreError>;
    /// Subscribes to changes of one ticket. Subscribe *before* reading the ticket: a
    /// change after the subscription always wakes the receiver.
    fn watch(&self, id: &str) -> TicketWatch;
}

/// In-process change notification: one watch channel per followed ticket.
#[derive(Default)]
pub struct Notifier {
    channels: Mutex<HashMap<String, watch::Sender<Option<Ticket>>>>,
}

impl Notifier {
    /// Subscribes to `id`.
    pub fn watch(&self, id: &str) -> TicketWatch {
        let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(id.to_string()).or_insert_with(|| watch::channel(None).0).subscribe()
    }

    /// Hands `ticket` to every subscriber of its id.
    pub fn publish(&self, ticket: &Ticket) {
        self.send(&ticket.id, || Some(ticket.clone()));
    }

    /// Wakes the subscribers of `id` without a ticket (a change made by another
    /// instance): they read the ticket from the store.
    pub fn wake(&self, id: &str) {
        self.send(id, || None);
    }

    /// Sends to the subscribers of `id`, dropping the channel when nobody listens.
    fn send(&self, id: &str, value: impl FnOnce() -> Option<Ticket>) {
        let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = map.get(id) {
            if tx.receiver_count() == 0 {
                map.remove(id);
            } else {
                tx.send_replace(value());
            }
        }
    }

    /// Forgets channels nobody listens to (called by the purge task).
    pub fn sweep(&self) -> usize {
        let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, tx| tx.receiver_count() > 0);
        map.len()
    }
}

/// The PostgreSQL channel on which instances announce ticket changes to each other.
pub const PG_CHANNEL: &str = "scanlogin_tickets";

/// Tickets in SQLite or PostgreSQL (through sqlx's `Any` driver).
pub struct SqlTicketStore {
    pool: AnyPool,
    notifier: Arc<Notifier>,
    /// PostgreSQL: also announce changes to other instances (`NOTIFY`).
    announce: bool,
}

impl SqlTicketStore {
    /// A store over `pool`; with `announce`, every change is also sent on
    /// [`PG_CHANNEL`] for the other instances sharing the database.
    pub fn new(pool: AnyPool, announce: bool) -> Self {
        SqlTicketStore { pool, notifier: Arc::default(), announce }
    }

    /// The notifier, for the PostgreSQL listener to wake local followers.
    pub fn notifier(&self) -> Arc<Notifier> {
        self.notifier.clone()
    }
}

/// Listens on [`PG_CHANNEL`] and wakes this instance's followers of the tickets that
/// other instances changed. Reconnects by itself; a change announced while it was
/// reconnecting is still answered, at the long-poll's deadline.
pub async fn listen_for_other_instances(url: String, notifier: Arc<Notifier>) {
    loop {
        let Err(e) = relay_changes(&url, &notifier).await;
        tracing::warn!(error = %e, "ticket change listener lost its connection; reconnecting");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Relays notifications on [`PG_CHANNEL`] to `notifier` until the connection fails.
async fn relay_changes(url: &str, notifier: &Notifier) -> Result<std::convert::Infallible, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen(PG_CHANNEL).await?;
    loop {
        notifier.wake(listener.recv().await?.payload());
    }
}

fn status_str(s: TicketStatus) -> &'static str {
    match s {
        TicketStatus::Waiting => "waiting",
        TicketStatus::Scanned => "scanned",
        TicketStatus::Confirmed => "confirmed",
        TicketStatus::Consumed => "consumed",
        TicketStatus::Cancelled => "cancelled",
        TicketStatus::Expired | TicketStatus::Unknown => "expired",
    }
}

fn parse_status(s: &str) -> TicketStatus {
    match s {
        "waiting" => TicketStatus::Waiting,
        "scanned" => TicketStatus::Scanned,
        "confirmed" => TicketStatus::Confirmed,
        "consumed" => TicketStatus::Consumed,
        "cancelled" => TicketStatus::Cancelled,
        _ => TicketStatus::Expired,
    }
}

type Row = (String, String, i64, String, String, i64, i64, Option<i64>, Option<String>, String, String, i64);

#[async_trait]
impl TicketStore for SqlTicketStore {
    async fn insert(&self, t: &Ticket) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tickets (id, status, version, browser_key, next, created_at, expires_at, \
             scanner_id, confirm_hash, origin_ip, origin_ua, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&t.id)
        .bind(status_str(t.status))
        .bind(t.version)
        .bind(&t.browser_key)
        .bind(&t.next)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(t.scanner_id)
        .bind(t.confirm_hash.clone())
        .bind(&t.origin.ip)
        .bind(&t.origin.user_agent)
        .bind(t.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Ticket>, StoreError> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT id, status, version, browser_key, next, created_at, expires_at, scanner_id, \
             confirm_hash, origin_ip, origin_ua, updated_at FROM tickets WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Ticket {
            id: r.0,
            status: parse_status(&r.1),
            version: r.2,
            browser_key: r.3,
            next: r.4,
            created_at: r.5,
            expires_at: r.6,
            scanner_id: r.7,
            confirm_hash: r.8,
            origin: Origin { ip: r.9, user_agent: r.10 },
            updated_at: r.11,
        }))
    }

    async fn replace(&self, t: &Ticket, expected_version: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE tickets SET status = $2, version = $3, expires_at = $4, scanner_id = $5, \
             confirm_hash = $6, updated_at = $7 WHERE id = $1 AND version = $8",
        )
        .bind(&t.id)
        .bind(status_str(t.status))
        .bind(t.version)
        .bind(t.expires_at)
        .bind(t.scanner_id)
        .bind(t.confirm_hash.clone())
        .bind(t.updated_at)
        .bind(expected_version)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        if done {
            self.notifier.publish(t);
            if self.announce {
                // pg_notify returns void, which sqlx's Any driver cannot decode: count it.
                let sent = sqlx::query("SELECT COUNT(*) FROM (SELECT pg_notify($1, $2)) AS n")
                    .bind(PG_CHANNEL)
                    .bind(&t.id)
                    .execute(&self.pool)
                    .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e, "could not announce a ticket change to other instances");
                }
            }
        }
        Ok(done)
    }

    async fn count_live(&self, browser_key: &str, now: i64) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM tickets WHERE browser_key = $1 \
             AND status IN ('waiting', 'scanned', 'confirmed') AND expires_at > $2",
        )
        .bind(browser_key)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }

    async fn purge(&self, before: i64) -> Result<u64, StoreError> {
        let n = sqlx::query(
            "DELETE FROM tickets WHERE expires_at < $1 \
             OR (status IN ('consumed', 'cancelled', 'expired') AND updated_at < $1)",
        )
        .bind(before)
        .execute(&self.pool)
        .await?
        .rows_affected();
        self.notifier.sweep();
        Ok(n)
    }

    fn watch(&self, id: &str) -> TicketWatch {
        self.notifier.watch(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notifier_wakes_subscribers_and_forgets_idle_channels() {
        let n = Notifier::default();
        let origin = Origin { ip: String::new(), user_agent: String::new() };
        let t = Ticket::new("a".into(), "k".into(), "/".into(), origin, 0, Default::default());
        let mut rx = n.watch("a");
        n.publish(&t);
        tokio::time::timeout(std::time::Duration::from_secs(1), rx.changed()).await.unwrap().unwrap();
        assert_eq!(rx.borrow_and_update().as_ref().map(|t| t.version), Some(1), "the ticket travels with the wake-up");
        drop(rx);
        assert_eq!(n.sweep(), 0);
        let mut other = t.clone();
        other.id = "nobody".into();
        n.publish(&other); // no channel, no panic
    }
}
