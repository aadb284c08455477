//! Session records kept in memory in front of the database, so that the requests that
//! only read a session — above all forward-auth's `/auth/verify`, which a reverse proxy
//! asks before every request to every protected app — do not each cost a query.
//!
//! Revocation stays immediate:
//! - This instance forgets a session in the same call that changes or deletes it.
//! - Other instances on the same PostgreSQL database hear of every changed or deleted
//!   session row through a trigger's `NOTIFY` (a hand-made `DELETE` in psql included),
//!   and forget it when the notification arrives, within milliseconds.
//! - While that listener is not connected (starting, reconnecting) the cache serves
//!   nothing, and it starts empty each time the listener connects, so a change missed
//!   meanwhile cannot be served from memory.
//! - A read that started before an invalidation never fills the cache (an epoch counter).
//! - Entries also age out after a time-to-live (`SESSION_CACHE_SECS`): the bound for
//!   changes no notification reports (a SQLite file edited by hand while running).
//!
//! Entries are keyed like the table's rows: by [`stored_key`], the digest of the
//! session id, which is also all a notification carries.

use crate::domain::UserId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tower_sessions::session::Record;

/// At most this many sessions are kept (about 300 bytes each).
const CAPACITY: usize = 10_000;

/// A save whose only change is an expiry this much later is not written: idle expiries
/// are days long, and a request that saved its session explicitly (sign-in) is saved
/// again by the session layer as it ends.
const EXPIRY_SLACK: time::Duration = time::Duration::minutes(1);

/// The PostgreSQL channel a trigger announces changed and deleted sessions on (their
/// stored keys: digests, never the ids cookies carry).
pub const PG_CHANNEL: &str = "scanlogin_sessions";

/// What a session is stored and announced under: the SHA-256 (hex) of its id. The id is
/// the cookie's value, a bearer credential; neither the table, a backup of it, nor the
/// change channel (which any role that can connect may `LISTEN` to) holds it.
pub fn stored_key(id: &tower_sessions::session::Id) -> SessionKey {
    SessionKey(crate::server::tokens::TokenHash::of(&id.to_string()).as_str().to_string())
}

/// A session as stored: its [`stored_key`], the `sessions` row's key. The phone and the
/// console name a signed-in browser by it; it is not the cookie and cannot act as one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(transparent)]
pub struct SessionKey(String);

impl SessionKey {
    /// A key named by a request (the phone's or the console's sign-out): SHA-256 hex, or
    /// none, so nothing else reaches a query.
    pub fn parse(s: &str) -> Option<SessionKey> {
        (s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then(|| SessionKey(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Hashes as its text (a derived `Hash` of the one field), so the cache is read by `&str`.
impl std::borrow::Borrow<str> for SessionKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for SessionKey {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

struct Entry {
    record: Record,
    user: Option<UserId>,
    filled: Instant,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<SessionKey, Entry>,
    /// Bumped by every invalidation.
    epoch: u64,
}

/// The cache. Off (`ttl` zero) it keeps nothing.
pub struct SessionCache {
    inner: Mutex<Inner>,
    ttl: Duration,
    /// Whether entries may be served: always on SQLite; on PostgreSQL only while the
    /// change listener is connected.
    armed: AtomicBool,
}

/// What a read saw before it went to the database: fill with it afterwards.
#[derive(Clone, Copy, Debug)]
pub struct ReadMark(u64);

impl SessionCache {
    /// A cache whose entries live `ttl`; `armed` says whether it serves from the start.
    pub fn new(ttl: Duration, armed: bool) -> Self {
        SessionCache { inner: Mutex::default(), ttl, armed: AtomicBool::new(armed) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn serving(&self) -> bool {
        !self.ttl.is_zero() && self.armed.load(Ordering::Acquire)
    }

    /// The session stored under `id` (its [`stored_key`]), if it is cached, fresh and not expired at `now`; otherwise the
    /// mark to fill the cache with after reading the database.
    pub fn get(&self, id: &str, now: OffsetDateTime) -> Result<Record, ReadMark> {
        let inner = self.lock();
        if self.serving()
            && let Some(e) = inner.entries.get(id)
            && e.filled.elapsed() < self.ttl
            && e.record.expiry_date > now
        {
            return Ok(e.record.clone());
        }
        Err(ReadMark(inner.epoch))
    }

    /// Keeps `record` (read from the database after `mark` was taken), unless anything
    /// was invalidated in between.
    pub fn fill(&self, mark: ReadMark, record: &Record, user: Option<UserId>) {
        if !self.serving() {
            return;
        }
        let mut inner = self.lock();
        if inner.epoch == mark.0 {
            self.keep(&mut inner, record, user);
        }
    }

    /// Stores an entry, making room first when full.
    fn keep(&self, inner: &mut Inner, record: &Record, user: Option<UserId>) {
        if inner.entries.len() >= CAPACITY {
            let ttl = self.ttl;
            inner.entries.retain(|_, e| e.filled.elapsed() < ttl);
            if inner.entries.len() >= CAPACITY {
                inner.entries.clear();
            }
        }
        inner.entries.insert(stored_key(&record.id), Entry { record: record.clone(), user, filled: Instant::now() });
    }

    /// Keeps a session this instance has just created: its id is new, so no read of it
    /// can be on its way, and concurrent reads of other sessions may still fill.
    pub fn created(&self, record: &Record, user: Option<UserId>) {
        if self.serving() {
            self.keep(&mut self.lock(), record, user);
        }
    }

    /// Keeps `record` as this instance has just written it (committed). Reads already on
    /// their way saw older data: the epoch moves on so that they do not fill.
    pub fn wrote(&self, record: &Record, user: Option<UserId>) {
        if !self.serving() {
            return;
        }
        let mut inner = self.lock();
        inner.epoch += 1;
        self.keep(&mut inner, record, user);
    }

    /// True when `record` is what the cache holds for its id (same data, expiry within
    /// [`EXPIRY_SLACK`]): saving it again would write nothing new.
    pub fn unchanged(&self, record: &Record) -> bool {
        if !self.serving() {
            return false;
        }
        let inner = self.lock();
        inner.entries.get(&stored_key(&record.id)).is_some_and(|e| {
            e.filled.elapsed() < self.ttl
                && e.record.data == record.data
                && (e.record.expiry_date - record.expiry_date).abs() < EXPIRY_SLACK
        })
    }

    /// Forgets session `id` (changed or deleted).
    pub fn forget(&self, id: &str) {
        let mut inner = self.lock();
        inner.epoch += 1;
        inner.entries.remove(id);
    }

    /// Forgets every session of `user`.
    pub fn forget_user(&self, user: UserId) {
        let mut inner = self.lock();
        inner.epoch += 1;
        inner.entries.retain(|_, e| e.user != Some(user));
    }

    /// Stops serving and forgets everything (the change listener lost its connection).
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::Release);
        self.clear();
    }

    /// Starts serving, empty (the change listener is connected and listening).
    pub fn arm(&self) {
        self.clear();
        self.armed.store(true, Ordering::Release);
    }

    fn clear(&self) {
        let mut inner = self.lock();
        inner.epoch += 1;
        inner.entries.clear();
    }

    /// How many sessions are cached.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_sessions::session::Id;

    fn record(expires_in: time::Duration) -> Record {
        Record { id: Id::default(), data: HashMap::new(), expiry_date: OffsetDateTime::now_utc() + expires_in }
    }

    #[test]
    fn serves_what_it_was_filled_with_until_forgotten() {
        let c = SessionCache::new(Duration::from_secs(60), true);
        let r = record(time::Duration::hours(1));
        let id = stored_key(&r.id);
        let t = c.get(&id, OffsetDateTime::now_utc()).unwrap_err();
        c.fill(t, &r, Some(UserId(7)));
        assert_eq!(c.get(&id, OffsetDateTime::now_utc()).ok().map(|r| r.id), Some(r.id));
        c.forget(&id);
        assert!(c.get(&id, OffsetDateTime::now_utc()).is_err());
    }

    #[test]
    fn a_read_overtaken_by_an_invalidation_does_not_fill() {
        let c = SessionCache::new(Duration::from_secs(60), true);
        let r = record(time::Duration::hours(1));
        let id = stored_key(&r.id);
        let t = c.get(&id, OffsetDateTime::now_utc()).unwrap_err();
        c.forget("some other session"); // a delete committed while our read was on its way
        c.fill(t, &r, Some(UserId(7)));
        assert!(c.get(&id, OffsetDateTime::now_utc()).is_err());
    }

    #[test]
    fn a_save_of_what_was_just_written_is_recognised() {
        let c = SessionCache::new(Duration::from_secs(60), true);
        let mut r = record(time::Duration::hours(1));
        c.wrote(&r, Some(UserId(1)));
        let mut later = r.clone();
        later.expiry_date += time::Duration::seconds(2);
        assert!(c.unchanged(&later), "only the expiry moved, by seconds");
        later.data.insert("signed_in".into(), serde_json::json!({ "seen_at": 1 }));
        assert!(!c.unchanged(&later), "new data is written");
        r.expiry_date += time::Duration::hours(2);
        assert!(!c.unchanged(&r), "a much later expiry is written");
        c.forget(&stored_key(&r.id));
        assert!(!c.unchanged(&r));
        let t = c.get("x", OffsetDateTime::now_utc()).unwrap_err();
        c.wrote(&record(time::Duration::hours(1)), None);
        c.fill(t, &r, None);
        assert!(c.get(&stored_key(&r.id), OffsetDateTime::now_utc()).is_err(), "a read from before a write does not fill");
    }

    #[test]
    fn forgets_a_users_sessions_and_nothing_else() {
        let c = SessionCache::new(Duration::from_secs(60), true);
        let (a, b) = (record(time::Duration::hours(1)), record(time::Duration::hours(1)));
        for (r, user) in [(&a, 1), (&b, 2)] {
            let t = c.get(&stored_key(&r.id), OffsetDateTime::now_utc()).unwrap_err();
            c.fill(t, r, Some(UserId(user)));
        }
        c.forget_user(UserId(1));
        assert!(c.get(&stored_key(&a.id), OffsetDateTime::now_utc()).is_err());
        assert!(c.get(&stored_key(&b.id), OffsetDateTime::now_utc()).is_ok());
    }

    #[test]
    fn expired_stale_and_disarmed_entries_are_not_served() {
        let now = OffsetDateTime::now_utc();
        let c = SessionCache::new(Duration::from_secs(60), true);
        let expired = record(time::Duration::seconds(-1));
        let t = c.get("x", now).unwrap_err();
        c.fill(t, &expired, None);
        assert!(c.get(&stored_key(&expired.id), now).is_err(), "an expired session is never served");

        let live = record(time::Duration::hours(1));
        let t = c.get("x", now).unwrap_err();
        c.fill(t, &live, None);
        c.disarm();
        assert!(c.get(&stored_key(&live.id), now).is_err(), "a disarmed cache serves nothing");
        let t = c.get("x", now).unwrap_err();
        c.fill(t, &live, None);
        assert!(c.is_empty(), "a disarmed cache keeps nothing");
        c.arm();
        let t = c.get("x", now).unwrap_err();
        c.fill(t, &live, None);
        assert!(c.get(&stored_key(&live.id), now).is_ok());

        let short = SessionCache::new(Duration::from_millis(1), true);
        let t = short.get("x", now).unwrap_err();
        short.fill(t, &live, None);
        std::thread::sleep(Duration::from_millis(5));
        assert!(short.get(&stored_key(&live.id), now).is_err(), "entries age out");

        let off = SessionCache::new(Duration::ZERO, true);
        let t = off.get("x", now).unwrap_err();
        off.fill(t, &live, None);
        assert!(off.is_empty(), "SESSION_CACHE_SECS=0 keeps nothing");
    }
}
