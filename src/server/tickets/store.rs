//! Persistence of tickets: one seam ([`TicketStore`]) that the SQL store implements
//! today and a Redis store can implement later, change notification included.

use super::machine::Ticket;
use crate::domain::{NextPath, TicketId, UnixMillis, UserId};
use crate::model::TicketStatus;
use crate::server::caller::Caller;
use crate::server::db::Db;
use crate::server::tokens::TokenHash;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
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
/// woken follower need not read it back from the store). The last one dropped takes
/// its channel out of the notifier: nobody waiting means no entry.
pub struct TicketWatch {
    rx: watch::Receiver<Option<Ticket>>,
    id: String,
    notifier: Arc<Notifier>,
}

impl TicketWatch {
    /// Waits for the next change; `None` when the ticket came as written, else (a
    /// change announced by another instance) it must be read from the store.
    pub async fn changed(&mut self) -> Option<Ticket> {
        match self.rx.changed().await {
            Ok(()) => self.rx.borrow_and_update().clone(),
            // The sender is gone only if the notifier forgot the channel: re-read.
            Err(_) => None,
        }
    }
}

impl Drop for TicketWatch {
    fn drop(&mut self) {
        let mut map = self.notifier.channels.lock().unwrap_or_else(|e| e.into_inner());
        // Our receiver is still alive here: 1 means nobody else is waiting.
        if map.get(&self.id).is_some_and(|tx| tx.receiver_count() <= 1) {
            map.remove(&self.id);
        }
    }
}

/// Where tickets live.
#[async_trait]
pub trait TicketStore: Send + Sync + 'static {
    /// Stores a new ticket.
    async fn insert(&self, ticket: &Ticket) -> Result<(), StoreError>;
    async fn get(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError>;
    /// The ticket as this instance last knew it, for following it (not for deciding):
    /// it may lag a change another instance has just made, whose notification, on its
    /// way, wakes the followers.
    async fn peek(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        self.get(id).await
    }
    /// Writes `ticket` only if the stored version is still `expected_version`, then
    /// notifies watchers. `false` when someone else changed it first.
    async fn replace(&self, ticket: &Ticket, expected_version: u64) -> Result<bool, StoreError>;
    /// How many tickets of one browser are alive (not final, not past expiry) at `now`.
    async fn count_live(&self, browser_key: &str, now: UnixMillis) -> Result<i64, StoreError>;
    /// How many tickets are alive at `now`, whoever made them.
    async fn count_all_live(&self, now: UnixMillis) -> Result<i64, StoreError>;
    /// Deletes tickets that expired or finished before `before`.
    async fn purge(&self, before: UnixMillis) -> Result<u64, StoreError>;
    /// Subscribes to changes of one ticket. Subscribe *before* reading the ticket: a
    /// change after the subscription always wakes the receiver.
    fn watch(&self, id: &TicketId) -> TicketWatch;
    /// How many tickets are being watched in this process.
    fn watchers(&self) -> usize;
    /// Forgets the tickets kept in memory: a test changed the table underneath.
    #[cfg(feature = "test-support")]
    fn forget_kept(&self) {}
}

/// In-process change notification: one watch channel per followed ticket; and the
/// tickets as this instance last wrote or read them ([`Kept`]), which a change announced
/// by another instance takes out.
#[derive(Default)]
pub struct Notifier {
    channels: Mutex<HashMap<String, watch::Sender<Option<Ticket>>>>,
    kept: Kept,
}

impl Notifier {
    /// Subscribes to changes of ticket `id`.
    pub fn watch(self: &Arc<Self>, id: &str) -> TicketWatch {
        let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let rx = map.entry(id.to_string()).or_insert_with(|| watch::channel(None).0).subscribe();
        TicketWatch { rx, id: id.to_string(), notifier: self.clone() }
    }

    /// How many tickets are being waited for.
    pub fn len(&self) -> usize {
        self.channels.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when nobody waits for any ticket.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hands `ticket` to every subscriber of its id.
    pub fn publish(&self, ticket: &Ticket) {
        self.send(ticket.id.as_str(), || Some(ticket.clone()));
    }

    /// Wakes the subscribers of `id` without a ticket (a change made by another
    /// instance): they read the ticket from the store, not from what was kept of it.
    pub fn wake(&self, id: &str) {
        self.kept.forget(id);
        self.send(id, || None);
    }

    /// Kept tickets may be served from now on: the listener hears every other instance's
    /// changes (PostgreSQL).
    pub fn arm(&self) {
        self.kept.set_armed(true);
    }

    /// Kept tickets are forgotten and not served: the listener lost its connection, so
    /// another instance's change could go unheard.
    pub fn disarm(&self) {
        self.kept.set_armed(false);
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

/// Tickets in SQLite or PostgreSQL (through sqlx's `Any` driver). On PostgreSQL a
/// trigger announces every change on [`PG_CHANNEL`] to the other instances sharing the
/// database (migration 10).
///
/// Each ticket is also kept in memory as this instance last wrote or read it
/// ([`Kept`]): a login reads its ticket five times (two long-polls, scan, confirm,
/// finalize). Writes go to the database first, and only a write that took is kept, so a
/// restart loses nothing. On SQLite, which serves one instance, every write goes through
/// this store and every read is answered from memory. On PostgreSQL other instances write
/// too, and their changes are heard a moment after they commit: only the long-polls read
/// from memory ([`TicketStore::peek`]), which that moment cannot mislead — the change's
/// notification takes the kept ticket out and wakes them — while the transitions read
/// the database, so nothing is refused on a state already gone.
pub struct SqlTicketStore {
    pool: Db,
    notifier: Arc<Notifier>,
    /// Whether every read may be answered from memory (SQLite).
    reads_from_memory: bool,
}

/// Tickets as last written or read, by id, with an epoch that every forgetting moves on:
/// a read or write started before a ticket was forgotten (another instance changed it)
/// keeps nothing, since what it brings back may be older than that change.
#[derive(Default)]
struct Kept {
    inner: Mutex<(HashMap<String, Ticket>, u64)>,
    armed: std::sync::atomic::AtomicBool,
}

/// Tickets kept at most (the service-wide ceiling allows 10,000 live ones by default):
/// past it, new tickets are read from the database until the purge makes room.
const KEPT_AT_MOST: usize = 50_000;

impl Kept {
    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<String, Ticket>, u64)> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kept ticket `id`, if kept and served.
    fn get(&self, id: &TicketId) -> Option<Ticket> {
        let inner = self.lock();
        inner.0.get(id.as_str()).filter(|_| self.armed.load(std::sync::atomic::Ordering::Acquire)).cloned()
    }

    /// The current epoch, taken before a read or write whose result is then kept.
    fn epoch(&self) -> u64 {
        self.lock().1
    }

    /// Keeps `t`, read or written since `epoch`, unless a later version of it is kept
    /// already (two writers' answers may arrive in either order; versions only grow).
    /// If something was forgotten since, `t` may be older than what the database holds:
    /// nothing is kept of it, not even an older version.
    fn put(&self, epoch: u64, t: &Ticket) {
        if !self.armed.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let mut inner = self.lock();
        if inner.1 != epoch {
            inner.0.remove(t.id.as_str());
            return;
        }
        let full = inner.0.len() >= KEPT_AT_MOST;
        match inner.0.get_mut(t.id.as_str()) {
            Some(known) if known.version >= t.version => {}
            Some(known) => *known = t.clone(),
            None if full => {}
            None => {
                inner.0.insert(t.id.as_str().to_string(), t.clone());
            }
        }
    }

    /// Forgets `id`: the database holds something else.
    fn forget(&self, id: &str) {
        let mut inner = self.lock();
        inner.0.remove(id);
        inner.1 += 1;
    }

    /// Serves (or stops serving) what is kept, starting from nothing either way.
    fn set_armed(&self, armed: bool) {
        let mut inner = self.lock();
        inner.0.clear();
        inner.1 += 1;
        self.armed.store(armed, std::sync::atomic::Ordering::Release);
    }
}

impl SqlTicketStore {
    /// A store over `pool`. On PostgreSQL it keeps nothing until the listener is
    /// connected ([`Notifier::arm`]).
    pub fn new(pool: Db) -> Self {
        let reads_from_memory = pool.backend() == crate::server::db::Backend::Sqlite;
        let notifier = Arc::new(Notifier::default());
        notifier.kept.set_armed(reads_from_memory);
        SqlTicketStore { pool, notifier, reads_from_memory }
    }

    /// The notifier, for the PostgreSQL listener to wake local followers.
    pub fn notifier(&self) -> Arc<Notifier> {
        self.notifier.clone()
    }

    fn kept(&self) -> &Kept {
        &self.notifier.kept
    }

    /// Ticket `id` from the database, kept if nothing was forgotten meanwhile.
    async fn read(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        let epoch = self.kept().epoch();
        let row: Option<TicketRow> = sqlx::query_as(
            "SELECT id, status, version, browser_key, next, created_at, expires_at, scanner_id, \
             confirm_hash, origin_ip, origin_ua, updated_at, finalize_hash, client_name, match_number, match_misses \
             FROM tickets WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let t = row.map(Ticket::try_from).transpose()?;
        if let Some(t) = &t {
            self.kept().put(epoch, t);
        }
        Ok(t)
    }
}

/// `'a', 'b', …`: statuses as an SQL list, spelled by [`TicketStatus::as_str`].
fn sql_list(statuses: &[TicketStatus]) -> String {
    statuses.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ")
}

const LIVE: [TicketStatus; 3] = [TicketStatus::Waiting, TicketStatus::Scanned, TicketStatus::Confirmed];
const DONE: [TicketStatus; 3] = [TicketStatus::Consumed, TicketStatus::Cancelled, TicketStatus::Expired];

static COUNT_LIVE: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT COUNT(*) FROM tickets WHERE browser_key = $1 AND status IN ({}) AND expires_at > $2", sql_list(&LIVE))
});
static COUNT_ALL_LIVE: LazyLock<String> =
    LazyLock::new(|| format!("SELECT COUNT(*) FROM tickets WHERE expires_at > $1 AND status IN ({})", sql_list(&LIVE)));
static PURGE: LazyLock<String> =
    LazyLock::new(|| format!("DELETE FROM tickets WHERE expires_at < $1 OR (status IN ({}) AND updated_at < $1)", sql_list(&DONE)));

/// A stored version (BIGINT) as the machine counts it.
fn version_to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[derive(sqlx::FromRow)]
struct TicketRow {
    id: String,
    status: String,
    version: i64,
    browser_key: String,
    next: String,
    created_at: UnixMillis,
    expires_at: UnixMillis,
    scanner_id: Option<UserId>,
    confirm_hash: Option<String>,
    origin_ip: String,
    origin_ua: String,
    updated_at: UnixMillis,
    finalize_hash: Option<String>,
    client_name: Option<String>,
    match_number: Option<i64>,
    match_misses: i64,
}

impl TryFrom<TicketRow> for Ticket {
    type Error = StoreError;

    fn try_from(r: TicketRow) -> Result<Self, StoreError> {
        let bad = |what: &str| StoreError(format!("ticket row with a bad {what}"));
        Ok(Ticket {
            id: TicketId::try_from(r.id).map_err(|_| bad("id"))?,
            status: r.status.parse().map_err(|_| bad("status"))?,
            version: u64::try_from(r.version).map_err(|_| bad("version"))?,
            browser_key: r.browser_key.into(),
            next: NextPath::try_from(r.next).map_err(|_| bad("next"))?,
            created_at: r.created_at,
            expires_at: r.expires_at,
            scanner_id: r.scanner_id,
            confirm_hash: r.confirm_hash.map(TokenHash::from_stored),
            finalize_hash: r.finalize_hash.map(TokenHash::from_stored),
            client_name: r.client_name,
            match_number: r.match_number.map(u8::try_from).transpose().map_err(|_| bad("match number"))?,
            match_misses: u8::try_from(r.match_misses).map_err(|_| bad("match misses"))?,
            // Stored as text; empty (or anything unreadable) when it was not known.
            origin: Caller { ip: r.origin_ip.parse().ok(), user_agent: r.origin_ua },
            updated_at: r.updated_at,
        })
    }
}

#[async_trait]
impl TicketStore for SqlTicketStore {
    async fn insert(&self, t: &Ticket) -> Result<(), StoreError> {
        let epoch = self.kept().epoch();
        sqlx::query(
            "INSERT INTO tickets (id, status, version, browser_key, next, created_at, expires_at, \
             scanner_id, confirm_hash, origin_ip, origin_ua, updated_at, finalize_hash, client_name, match_number, match_misses) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(t.id.as_str())
        .bind(t.status.as_str())
        .bind(version_to_sql(t.version))
        .bind(t.browser_key.as_str())
        .bind(t.next.as_str())
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(t.scanner_id)
        .bind(t.confirm_hash.as_ref().map(|h| h.as_str().to_string()))
        .bind(t.origin.ip_text())
        .bind(&t.origin.user_agent)
        .bind(t.updated_at)
        .bind(t.finalize_hash.as_ref().map(|h| h.as_str().to_string()))
        .bind(t.client_name.clone())
        .bind(t.match_number.map(i64::from))
        .bind(i64::from(t.match_misses))
        .execute(&self.pool)
        .await?;
        self.kept().put(epoch, t);
        Ok(())
    }

    async fn get(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        if self.reads_from_memory {
            return self.peek(id).await;
        }
        self.read(id).await
    }

    async fn peek(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        match self.kept().get(id) {
            Some(t) => Ok(Some(t)),
            None => self.read(id).await,
        }
    }

    async fn replace(&self, t: &Ticket, expected_version: u64) -> Result<bool, StoreError> {
        let epoch = self.kept().epoch();
        let done = sqlx::query(
            "UPDATE tickets SET status = $2, version = $3, expires_at = $4, scanner_id = $5, \
             confirm_hash = $6, updated_at = $7, match_number = $9, match_misses = $10 WHERE id = $1 AND version = $8",
        )
        .bind(t.id.as_str())
        .bind(t.status.as_str())
        .bind(version_to_sql(t.version))
        .bind(t.expires_at)
        .bind(t.scanner_id)
        .bind(t.confirm_hash.as_ref().map(|h| h.as_str().to_string()))
        .bind(t.updated_at)
        .bind(version_to_sql(expected_version))
        .bind(t.match_number.map(i64::from))
        .bind(i64::from(t.match_misses))
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        if done {
            self.kept().put(epoch, t);
        } else {
            self.kept().forget(t.id.as_str());
        }
        if done {
            self.notifier.publish(t);
        }
        Ok(done)
    }

    async fn count_live(&self, browser_key: &str, now: UnixMillis) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as(&COUNT_LIVE).bind(browser_key).bind(now).fetch_one(&self.pool).await?;
        Ok(n)
    }

    async fn count_all_live(&self, now: UnixMillis) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as(&COUNT_ALL_LIVE).bind(now).fetch_one(&self.pool).await?;
        Ok(n)
    }

    async fn purge(&self, before: UnixMillis) -> Result<u64, StoreError> {
        let n = sqlx::query(&PURGE).bind(before).execute(&self.pool).await?.rows_affected();
        // What the statement deleted.
        self.kept().lock().0.retain(|_, t| t.expires_at >= before && !(DONE.contains(&t.status) && t.updated_at < before));
        self.notifier.sweep();
        Ok(n)
    }

    fn watch(&self, id: &TicketId) -> TicketWatch {
        self.notifier.watch(id.as_str())
    }

    fn watchers(&self) -> usize {
        self.notifier.len()
    }

    #[cfg(feature = "test-support")]
    fn forget_kept(&self) {
        let mut kept = self.kept().lock();
        kept.0.clear();
        kept.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notifier_wakes_subscribers_and_forgets_idle_channels() {
        let n = Arc::new(Notifier::default());
        let origin = Caller::unknown();
        let id = TicketId::try_from("a").unwrap();
        let t = Ticket::new(id, "k".into(), TokenHash::of("f"), NextPath::default(), origin, UnixMillis(0), Default::default());
        let mut rx = n.watch("a");
        let other_waiter = n.watch("a");
        n.publish(&t);
        let woke = tokio::time::timeout(std::time::Duration::from_secs(1), rx.changed()).await.unwrap();
        assert_eq!(woke.map(|t| t.version), Some(1), "the ticket travels with the wake-up");
        drop(rx);
        assert_eq!(n.len(), 1, "another waiter keeps the channel");
        drop(other_waiter);
        assert_eq!(n.len(), 0, "the last waiter gone, the entry is gone");
        let mut other = t.clone();
        other.id = TicketId::try_from("nobody").unwrap();
        n.publish(&other); // no channel, no panic
    }

    /// What another instance changed (announced: forgotten) is never served again from
    /// a read or write that began before the announcement; and nothing is served while
    /// the announcements cannot be heard.
    #[test]
    fn a_kept_ticket_never_outlives_an_announced_change() {
        let kept = Kept::default();
        let id = TicketId::try_from("a").unwrap();
        let t = Ticket::new(
            id.clone(),
            "k".into(),
            TokenHash::of("f"),
            NextPath::default(),
            Caller::unknown(),
            UnixMillis(0),
            Default::default(),
        );
        let mut two = t.clone();
        two.version = 2;
        kept.put(kept.epoch(), &t);
        assert!(kept.get(&id).is_none(), "not armed: nothing kept");
        kept.set_armed(true);
        kept.put(kept.epoch(), &t);
        assert_eq!(kept.get(&id).map(|t| t.version), Some(1));
        // A write of version 2 starts; another instance's change to some ticket is
        // announced before it answers: version 2 is not kept, and version 1 is gone too.
        let before = kept.epoch();
        kept.forget("other");
        kept.put(before, &two);
        assert!(kept.get(&id).is_none(), "an answer older than an announcement keeps nothing");
        kept.put(kept.epoch(), &two);
        kept.put(kept.epoch(), &t);
        assert_eq!(kept.get(&id).map(|t| t.version), Some(2), "a late older version changes nothing");
        kept.forget("a");
        assert!(kept.get(&id).is_none(), "announced: forgotten");
        kept.put(kept.epoch(), &two);
        kept.set_armed(false);
        assert!(kept.get(&id).is_none(), "the listener gone: nothing served");
    }

    #[cfg(feature = "test-support")]
    #[tokio::test]
    async fn on_sqlite_a_ticket_is_read_from_memory_as_last_written() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::server::db::connect(&format!("sqlite://{}/t.db", dir.path().display()), "test", Some(2)).await.unwrap();
        let store = SqlTicketStore::new(db.clone());
        let id = TicketId::try_from("a").unwrap();
        let origin = Caller::unknown();
        let t = Ticket::new(id.clone(), "k".into(), TokenHash::of("f"), NextPath::default(), origin, UnixMillis(0), Default::default());
        store.insert(&t).await.unwrap();
        let version = |t: Option<Ticket>| t.map(|t| t.version);
        // Changed underneath (as only something other than this store could):
        sqlx::query("UPDATE tickets SET version = 5 WHERE id = 'a'").execute(&db).await.unwrap();
        assert_eq!(version(store.get(&id).await.unwrap()), Some(1), "read from memory");
        // A conditional write against what memory holds fails and forgets it.
        let mut two = t.clone();
        two.version = 2;
        assert!(!store.replace(&two, 1).await.unwrap());
        assert_eq!(version(store.get(&id).await.unwrap()), Some(5), "read from the database again");
        // A write that takes is what later reads see.
        let mut six = t.clone();
        six.version = 6;
        six.status = TicketStatus::Cancelled;
        assert!(store.replace(&six, 5).await.unwrap());
        assert_eq!(store.get(&id).await.unwrap().map(|t| (t.version, t.status)), Some((6, TicketStatus::Cancelled)));
        // An older version arriving late (a slower writer's answer) changes nothing.
        store.kept().put(store.kept().epoch(), &t);
        assert_eq!(version(store.get(&id).await.unwrap()), Some(6));
        // What the purge deletes is gone from memory too.
        assert_eq!(store.purge(UnixMillis(i64::MAX)).await.unwrap(), 1);
        assert!(store.get(&id).await.unwrap().is_none(), "purged");
    }
}
