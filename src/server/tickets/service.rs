//! Ticket operations over a [`TicketStore`]: every transition is load → pure
//! transition → conditional write, retried when another writer won the race.

use super::machine::{Lifetimes, Ticket, TicketError};
use super::store::TicketStore;
use crate::domain::{TicketId, UnixMillis};
use crate::error::{AppError, ErrorCode};
use crate::server::clock::Clock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The ticket service shared by all endpoints.
pub struct Tickets {
    store: Arc<dyn TicketStore>,
    clock: Arc<dyn Clock>,
    pub life: Lifetimes,
    polls: PollLimiter,
    /// True once the server is shutting down: open long-polls answer at once.
    draining: tokio::sync::watch::Sender<bool>,
    live: LiveCount,
}

/// How long a count of the live tickets is used before it is read again.
const LIVE_COUNT_AGE: Duration = Duration::from_secs(1);

/// The count of live tickets that the service-wide ceiling checks every new ticket
/// against: read from the store at most once a second (one reader at a time) and counted
/// up by this instance's own inserts in between. Counting on every ticket scanned every
/// live row, up to the ceiling's 10,000, just when a flood fills it. Tickets that end
/// within the second, and other instances' inserts, are seen at the next read: the
/// ceiling may be passed by one second of the other instances' tickets.
#[derive(Default)]
struct LiveCount {
    value: Mutex<Option<(tokio::time::Instant, i64)>>,
    reading: tokio::sync::Mutex<()>,
}

impl LiveCount {
    fn fresh(&self) -> Option<i64> {
        let v = self.value.lock().unwrap_or_else(|e| e.into_inner());
        v.filter(|(at, _)| at.elapsed() < LIVE_COUNT_AGE).map(|(_, n)| n)
    }

    fn set(&self, n: i64) {
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = Some((tokio::time::Instant::now(), n));
    }

    fn add_one(&self) {
        if let Some((_, n)) = self.value.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            *n += 1;
        }
    }
}

impl Tickets {
    /// A service over `store`.
    pub fn new(store: Arc<dyn TicketStore>, clock: Arc<dyn Clock>, life: Lifetimes, polls_per_browser: usize) -> Self {
        Tickets {
            store,
            clock,
            life,
            polls: PollLimiter::new(polls_per_browser),
            draining: tokio::sync::watch::channel(false).0,
            live: LiveCount::default(),
        }
    }

    /// The server is going away: every open long-poll answers now with the ticket's
    /// current state (the page asks again, elsewhere), and new ones do not wait.
    pub fn start_draining(&self) {
        self.draining.send_replace(true);
    }

    /// True once [`Tickets::start_draining`] was called.
    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Now, by the injected clock.
    pub fn now(&self) -> UnixMillis {
        self.clock.now()
    }

    /// Stores a new ticket.
    pub async fn insert(&self, ticket: &Ticket) -> Result<(), AppError> {
        self.store.insert(ticket).await?;
        self.live.add_one();
        Ok(())
    }

    /// Loads a ticket as this instance knows it, persisting its expiry when its time has
    /// come. It may lag a change another instance has just made (on PostgreSQL,
    /// [`TicketStore::peek`]): a long-poll is woken by that change's announcement, and a
    /// decision that refuses reads the database again ([`Tickets::newer`]) — what it
    /// allows is written by a conditional write, which fails on a stale copy.
    pub async fn load(&self, id: &TicketId) -> Result<Option<Ticket>, AppError> {
        let t = self.store.peek(id).await?;
        self.expire_due(id, t).await
    }

    /// [`Tickets::load`] from the store itself (on PostgreSQL, the database).
    pub async fn load_stored(&self, id: &TicketId) -> Result<Option<Ticket>, AppError> {
        let t = self.store.get(id).await?;
        self.expire_due(id, t).await
    }

    /// The stored ticket if it is not `t`: another instance changed it since this one
    /// last heard (its announcement still on its way). `None` on SQLite, where the
    /// store's copy is the one in memory.
    pub async fn newer(&self, t: &Ticket) -> Result<Option<Ticket>, AppError> {
        Ok(self.load_stored(&t.id).await?.filter(|stored| stored.version != t.version))
    }

    /// Loads ticket `id` and decides on it; a refusal is decided again on the stored
    /// ticket if that is newer ([`Tickets::newer`]).
    pub async fn decide<T>(&self, id: &TicketId, decide: impl Fn(&Ticket) -> Result<T, TicketError>) -> Result<(Ticket, T), AppError> {
        let Some(t) = self.load(id).await? else { return Err(ErrorCode::TicketNotFound.into()) };
        match decide(&t) {
            Ok(out) => Ok((t, out)),
            Err(refused) => match self.newer(&t).await? {
                Some(stored) => {
                    let out = decide(&stored)?;
                    Ok((stored, out))
                }
                None => Err(refused.into()),
            },
        }
    }

    /// `t` as it is now: expired, and that persisted, when its time has come.
    async fn expire_due(&self, id: &TicketId, t: Option<Ticket>) -> Result<Option<Ticket>, AppError> {
        let Some(mut t) = t else { return Ok(None) };
        let before = t.version;
        if t.expire_at(self.now()) && !self.store.replace(&t, before).await? {
            // Someone else changed it meanwhile; their version is the truth.
            return Ok(self.store.get(id).await?);
        }
        Ok(Some(t))
    }

    /// Applies `change` atomically. Refusals change nothing (an expiry that came due is
    /// still persisted: that is time, not the caller, changing the ticket).
    pub async fn update<T>(
        &self,
        id: &TicketId,
        change: impl Fn(&mut Ticket, UnixMillis) -> Result<T, TicketError>,
    ) -> Result<(Ticket, T), AppError> {
        let Some(current) = self.load(id).await? else {
            return Err(ErrorCode::TicketNotFound.into());
        };
        self.update_from(current, change).await
    }

    /// [`Tickets::update`] starting from a ticket the caller has just loaded; it is read
    /// again only when another writer changed it in between.
    pub async fn update_from<T>(
        &self,
        mut current: Ticket,
        change: impl Fn(&mut Ticket, UnixMillis) -> Result<T, TicketError>,
    ) -> Result<(Ticket, T), AppError> {
        for _ in 0..8 {
            let mut next = current.clone();
            let out = match change(&mut next, self.now()) {
                Ok(out) => out,
                // Refused on a copy another instance has changed since: decided again.
                Err(refused) => match self.newer(&current).await? {
                    Some(stored) => {
                        current = stored;
                        continue;
                    }
                    None => return Err(refused.into()),
                },
            };
            if next == current || self.store.replace(&next, current.version).await? {
                return Ok((next, out));
            }
            current = match self.load_stored(&current.id).await? {
                Some(t) => t,
                None => return Err(ErrorCode::TicketNotFound.into()),
            };
        }
        Err(AppError::internal(format!("ticket {}: too much write contention", current.id)))
    }

    /// Writes an already-transitioned ticket if nobody changed it since `expected_version`.
    pub async fn commit(&self, ticket: &Ticket, expected_version: u64) -> Result<bool, AppError> {
        Ok(self.store.replace(ticket, expected_version).await?)
    }

    /// The long-poll: answers as soon as the ticket's version exceeds `seen`, when it
    /// expires, or after `wait`. Only the creating browser can follow a ticket; unknown
    /// and foreign tickets are answered after one read, before a wait slot is taken.
    pub async fn follow(&self, id: &TicketId, browser_key: &str, seen: u64, wait: Duration) -> Result<Ticket, AppError> {
        let mine = |t: Option<Ticket>| t.filter(|t| t.is_bound_to(browser_key)).ok_or(AppError::new(ErrorCode::TicketNotFound));
        // Changes are watched before the one read: a change made after it always wakes us.
        let mut changes = self.store.watch(id);
        let mut t = mine(self.load(id).await?)?;
        if t.version > seen {
            return Ok(t);
        }
        let _slot = self.polls.enter(browser_key).ok_or_else(|| AppError::new(ErrorCode::RateLimited).retry_after(1))?;
        let _open = crate::server::metrics::OpenLongPoll::start();
        let deadline = tokio::time::Instant::now() + wait;
        let mut draining = self.draining.subscribe();
        loop {
            if t.version > seen || tokio::time::Instant::now() >= deadline || *draining.borrow_and_update() {
                return Ok(t);
            }
            let mut wake = deadline;
            if !t.status.is_final() {
                // Wake just after expiry so an expiring ticket is answered promptly.
                let left = self.now().until(t.expires_at) + Duration::from_millis(20);
                wake = wake.min(tokio::time::Instant::now() + left);
            }
            // A change notification carries the ticket as written: answer from it without
            // reading the store again (under load, that read waits for a connection).
            let pushed = tokio::select! {
                pushed = changes.changed() => pushed.filter(|p| p.version > seen && p.expires_at > self.now()),
                _ = tokio::time::sleep_until(wake) => None,
                _ = draining.changed() => return Ok(t),
            };
            t = match pushed {
                Some(p) => mine(Some(p))?,
                None => mine(self.load(id).await?)?,
            };
        }
    }

    /// How many tickets are being waited for, and how many browsers are waiting: both
    /// fall back to zero when nobody waits.
    pub fn waiting(&self) -> (usize, usize) {
        (self.store.watchers(), self.polls.len())
    }

    /// Forgets the tickets kept in memory: a test changed the table underneath.
    #[cfg(feature = "test-support")]
    pub fn forget_kept(&self) {
        self.store.forget_kept();
    }

    /// How many tickets of this browser are alive now.
    pub async fn count_live(&self, browser_key: &str) -> Result<i64, AppError> {
        Ok(self.store.count_live(browser_key, self.now()).await?)
    }

    /// How many tickets are alive now, whoever made them.
    pub async fn count_all_live(&self) -> Result<i64, AppError> {
        Ok(self.store.count_all_live(self.now()).await?)
    }

    /// [`Tickets::count_all_live`] as of at most a second ago, plus this instance's
    /// tickets since (see [`LiveCount`]): for the service-wide ceiling.
    pub async fn count_all_live_recent(&self) -> Result<i64, AppError> {
        if let Some(n) = self.live.fresh() {
            return Ok(n);
        }
        let _one = self.live.reading.lock().await;
        if let Some(n) = self.live.fresh() {
            return Ok(n);
        }
        let n = self.count_all_live().await?;
        self.live.set(n);
        Ok(n)
    }

    /// Deletes tickets finished or expired before `before`.
    pub async fn purge(&self, before: UnixMillis) -> Result<u64, AppError> {
        Ok(self.store.purge(before).await?)
    }
}

/// Bounds the open long-polls per browser.
struct PollLimiter {
    max: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

struct PollSlot {
    key: String,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl PollLimiter {
    fn new(max: usize) -> Self {
        PollLimiter { max, open: Arc::default() }
    }

    fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn enter(&self, key: &str) -> Option<PollSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key.to_string()).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(PollSlot { key: key.to_string(), open: self.open.clone() })
    }
}

impl Drop for PollSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::tickets::store::StoreError;

    /// A store whose memory lags the database by one change: another instance's, its
    /// announcement still on its way.
    struct Lagging {
        memory: Mutex<Ticket>,
        stored: Mutex<Ticket>,
        reads: std::sync::atomic::AtomicUsize,
        notifier: Arc<super::super::store::Notifier>,
    }

    #[async_trait::async_trait]
    impl TicketStore for Lagging {
        async fn insert(&self, _: &Ticket) -> Result<(), StoreError> {
            Ok(())
        }
        async fn get(&self, _: &TicketId) -> Result<Option<Ticket>, StoreError> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Some(self.stored.lock().unwrap().clone()))
        }
        async fn peek(&self, _: &TicketId) -> Result<Option<Ticket>, StoreError> {
            Ok(Some(self.memory.lock().unwrap().clone()))
        }
        async fn replace(&self, t: &Ticket, expected: u64) -> Result<bool, StoreError> {
            let mut stored = self.stored.lock().unwrap();
            if stored.version != expected {
                return Ok(false);
            }
            *stored = t.clone();
            *self.memory.lock().unwrap() = t.clone();
            Ok(true)
        }
        async fn count_live(&self, _: &str, _: UnixMillis) -> Result<i64, StoreError> {
            Ok(0)
        }
        async fn count_all_live(&self, _: UnixMillis) -> Result<i64, StoreError> {
            Ok(0)
        }
        async fn purge(&self, _: UnixMillis) -> Result<u64, StoreError> {
            Ok(0)
        }
        fn watch(&self, id: &TicketId) -> super::super::store::TicketWatch {
            self.notifier.watch(id.as_str())
        }
        fn watchers(&self) -> usize {
            0
        }
    }

    /// A phone's confirm lands on an instance that has not yet heard of the re-scan
    /// another instance recorded (a new confirm token): refused on the kept copy, it is
    /// decided again on the stored ticket and goes through. A refusal the stored ticket
    /// shares stays a refusal, and nothing is written.
    #[tokio::test]
    async fn a_refusal_on_a_lagging_copy_is_decided_again_on_the_stored_ticket() {
        use crate::domain::{NextPath, UserId};
        use crate::model::TicketStatus;
        use crate::server::caller::Caller;
        use crate::server::tokens::TokenHash;
        let clock = Arc::new(crate::server::clock::SystemClock);
        let now = clock.now();
        let id = TicketId::try_from("lagging").unwrap();
        let life = Lifetimes::default();
        let mut first = Ticket::new(id.clone(), "k".into(), TokenHash::of("f"), NextPath::default(), Caller::unknown(), now, life);
        first.scan(UserId(7), TokenHash::of("token 1"), now, life, None).unwrap();
        let mut rescanned = first.clone();
        rescanned.scan(UserId(7), TokenHash::of("token 2"), now, life, None).unwrap();
        rescanned.version = first.version + 1;
        let store = Arc::new(Lagging {
            memory: Mutex::new(first.clone()),
            stored: Mutex::new(rescanned.clone()),
            reads: Default::default(),
            notifier: Default::default(),
        });
        let tickets = Tickets::new(store.clone(), clock, life, 4);

        let refused = tickets.update(&id, |t, now| t.confirm(&TokenHash::of("token 1"), None, now)).await;
        assert_eq!(refused.err().map(|e| e.code), Some(ErrorCode::NotScanner), "the old token is refused by the stored ticket too");
        assert_eq!(store.stored.lock().unwrap().version, rescanned.version, "nothing written");

        let (confirmed, ()) = tickets.update(&id, |t, now| t.confirm(&TokenHash::of("token 2"), None, now)).await.unwrap();
        assert_eq!((confirmed.status, confirmed.version), (TicketStatus::Confirmed, rescanned.version + 1));
        assert_eq!(*store.stored.lock().unwrap(), confirmed);

        // `decide` likewise: the kept copy says scanned, the stored one confirmed.
        *store.memory.lock().unwrap() = first;
        let reads = store.reads.load(std::sync::atomic::Ordering::SeqCst);
        let confirmed_only = |t: &Ticket| if t.status == TicketStatus::Confirmed { Ok(t.version) } else { Err(TicketError::NotConfirmed) };
        let (t, v) = tickets.decide(&id, confirmed_only).await.unwrap();
        assert_eq!((t.status, v), (TicketStatus::Confirmed, confirmed.version));
        assert_eq!(store.reads.load(std::sync::atomic::Ordering::SeqCst), reads + 1, "one read of the stored ticket");
    }

    #[test]
    fn poll_limiter_bounds_and_releases() {
        let l = PollLimiter::new(2);
        let a = l.enter("k").unwrap();
        let _b = l.enter("k").unwrap();
        assert!(l.enter("k").is_none());
        assert!(l.enter("other").is_some());
        drop(a);
        assert!(l.enter("k").is_some());
    }

    #[test]
    fn the_live_count_is_read_first_then_counted_up() {
        let live = LiveCount::default();
        live.add_one();
        assert_eq!(live.fresh(), None, "nothing counted before a first read");
        live.set(3);
        live.add_one();
        live.add_one();
        assert_eq!(live.fresh(), Some(5));
        *live.value.lock().unwrap() = Some((tokio::time::Instant::now() - LIVE_COUNT_AGE, 5));
        assert_eq!(live.fresh(), None, "a count a second old is read again");
    }
}
