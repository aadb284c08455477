//! Sessions: tower-sessions with our own store over the app's database (so sessions
//! share the pool, the migrations and the purge task, and can be listed per user), and
//! a typed wrapper: a session holds the browser's binding key and, once signed in, one
//! [`SignedIn`] struct under one key.

use crate::domain::{UnixMillis, UserId};
use crate::error::AppError;
use crate::server::db::Db;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error as StoreError, Result as StoreResult};
use tower_sessions::{Expiry, Session, SessionStore};

pub mod cache;
pub use cache::{SessionCache, SessionKey, stored_key};
use std::sync::Arc;

const BROWSER_KEY: &str = "browser_key";

/// The secret that binds a browser's tickets to it (kept in its session): whoever holds it
/// can follow and finalize that browser's logins, so `Debug` never shows it (a `Ticket`
/// in a log line carries `BrowserKey(..)`). Reads as `&str` for comparisons and SQL.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BrowserKey(String);

impl BrowserKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for BrowserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BrowserKey(..)")
    }
}

impl std::ops::Deref for BrowserKey {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<String> for BrowserKey {
    fn from(s: String) -> Self {
        BrowserKey(s)
    }
}

impl From<&str> for BrowserKey {
    fn from(s: &str) -> Self {
        BrowserKey(s.to_string())
    }
}
const SIGNED_IN: &str = "signed_in";

/// Who is signed in on this browser, since when, from where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    /// Our user id.
    pub user: UserId,
    pub login_at: UnixMillis,
    /// Last activity, to the hour.
    pub seen_at: UnixMillis,
    /// IP at login.
    pub ip: String,
    /// User agent at login.
    pub user_agent: String,
}

/// After login rotates the session id, the old id stays this long as an anonymous
/// session holding only the old binding key: longer than the minute in which a lost
/// finalize answer may be repeated with the old cookie.
const ROTATED_GRACE: Duration = Duration::from_secs(90);

/// How long sessions live without activity.
#[derive(Clone, Copy, Debug)]
pub struct SessionLifetimes {
    /// A session with only a binding key: no longer than its longest ticket plus the
    /// purge grace.
    pub anonymous: Duration,
    /// A signed-in session (`SESSION_IDLE_SECS`), counted from sign-in.
    pub signed_in: Duration,
}

/// A signed-in session is re-saved (sliding its idle expiry) at most this often.
const TOUCH_EVERY: Duration = Duration::from_secs(3600);

/// One signed-in browser of a user, as listed on the account page.
#[derive(Clone, Debug)]
pub struct SignedInBrowser {
    /// The session's [`stored_key`] (never sent to a browser).
    pub key: SessionKey,
    pub signed_in: SignedIn,
}

/// Signed-in browsers from `sessions` rows (their key and data), most recently seen
/// first; a row whose data names no signed-in person is left out.
pub fn signed_in_browsers(rows: Vec<(SessionKey, String)>) -> Vec<SignedInBrowser> {
    let mut list: Vec<SignedInBrowser> = rows
        .into_iter()
        .filter_map(|(key, data)| {
            let mut v: serde_json::Value = serde_json::from_str(&data).ok()?;
            let signed_in = serde_json::from_value(v.get_mut(SIGNED_IN)?.take()).ok()?;
            Some(SignedInBrowser { key, signed_in })
        })
        .collect();
    list.sort_by_key(|s| std::cmp::Reverse(s.signed_in.seen_at));
    list
}

/// Sessions in the `sessions` table, read through a [`SessionCache`]. Rows are keyed by
/// [`stored_key`], the digest of the session id: the id itself is never stored.
#[derive(Clone)]
pub struct SqlSessionStore {
    pool: Db,
    cache: Arc<SessionCache>,
}

impl std::fmt::Debug for SqlSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSessionStore").field("cached", &self.cache.len()).finish_non_exhaustive()
    }
}

fn millis(t: OffsetDateTime) -> UnixMillis {
    UnixMillis(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
}

/// The signed-in user of a session record.
fn user_of(r: &Record) -> Option<UserId> {
    r.data.get(SIGNED_IN).and_then(|v| v.get("user")).and_then(|v| v.as_i64()).map(UserId)
}

/// tower-sessions' expiry after `d` without activity (its own duration type stays here).
pub fn inactivity(d: Duration) -> Expiry {
    Expiry::OnInactivity(time::Duration::try_from(d).unwrap_or(time::Duration::MAX))
}

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqlSessionStore {
    /// A store over `pool`, reading through `cache`.
    pub fn new(pool: Db, cache: Arc<SessionCache>) -> Self {
        SqlSessionStore { pool, cache }
    }

    /// The cache (for the PostgreSQL listener that keeps it true).
    pub fn cache(&self) -> Arc<SessionCache> {
        self.cache.clone()
    }

    /// Deletes sessions that expired before `now`.
    pub async fn delete_expired(&self, now: UnixMillis) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at < $1").bind(now).execute(&self.pool).await?.rows_affected())
    }

    /// The user's live signed-in sessions, most recently seen first.
    pub async fn list_for_user(&self, user: UserId, now: UnixMillis) -> Result<Vec<SignedInBrowser>, sqlx::Error> {
        let rows: Vec<(SessionKey, String)> =
            sqlx::query_as("SELECT id, data FROM sessions WHERE user_id = $1 AND expires_at > $2 AND parent IS NULL")
                .bind(user)
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
        Ok(signed_in_browsers(rows))
    }

    /// Removes the session `id` outright.
    pub async fn remove(&self, id: &Id) -> Result<(), sqlx::Error> {
        self.remove_stored(&stored_key(id)).await
    }

    /// Removes `user`'s signed-in browser session stored under `key` (with its linked
    /// forward-auth sessions); false when `user` has no such session.
    pub async fn remove_for_user(&self, user: UserId, key: &SessionKey) -> Result<bool, sqlx::Error> {
        let mine: Option<(String,)> = sqlx::query_as("SELECT id FROM sessions WHERE id = $1 AND user_id = $2 AND parent IS NULL")
            .bind(key)
            .bind(user)
            .fetch_optional(&self.pool)
            .await?;
        if mine.is_none() {
            return Ok(false);
        }
        self.remove_stored(key).await?;
        Ok(true)
    }

    /// Whether forward-auth sessions hang off the session stored under `key`.
    pub async fn has_linked(&self, key: &SessionKey) -> Result<bool, sqlx::Error> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE parent = $1").bind(key).fetch_one(&self.pool).await?;
        Ok(n > 0)
    }

    /// Removes the row stored under `key` outright, with the forward-auth sessions
    /// linked to it.
    async fn remove_stored(&self, key: &SessionKey) -> Result<(), sqlx::Error> {
        let children: Vec<(String,)> = sqlx::query_as("SELECT id FROM sessions WHERE parent = $1").bind(key).fetch_all(&self.pool).await?;
        sqlx::query("DELETE FROM sessions WHERE id = $1 OR parent = $1").bind(key).execute(&self.pool).await?;
        self.cache.forget(key);
        for (child,) in children {
            self.cache.forget(&child);
        }
        Ok(())
    }

    /// A forward-auth session for the signed-in session `parent` (`COOKIE_DOMAIN`): the
    /// same person and login, its own id (for its own cookie), ending with its parent.
    pub async fn create_linked(&self, parent: &Id, who: &SignedIn, expires_at: UnixMillis) -> Result<Id, sqlx::Error> {
        let id = Id::default();
        let data = serde_json::json!({ SIGNED_IN: who }).to_string();
        sqlx::query("INSERT INTO sessions (id, data, expires_at, user_id, parent) VALUES ($1, $2, $3, $4, $5)")
            .bind(stored_key(&id))
            .bind(data)
            .bind(expires_at)
            .bind(who.user)
            .bind(stored_key(parent))
            .execute(&self.pool)
            .await?;
        Ok(id)
    }

    /// How many live signed-in sessions each user has.
    pub async fn count_by_user(&self, now: UnixMillis) -> Result<std::collections::HashMap<UserId, i64>, sqlx::Error> {
        let rows: Vec<(UserId, i64)> = sqlx::query_as(
            "SELECT user_id, COUNT(*) FROM sessions WHERE user_id IS NOT NULL AND expires_at > $1 AND parent IS NULL GROUP BY user_id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Deletes every session of `user` (disabled); returns how many ended.
    pub async fn delete_user(&self, user: UserId) -> Result<u64, sqlx::Error> {
        let ended = sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user).execute(&self.pool).await?.rows_affected();
        self.cache.forget_user(user);
        Ok(ended)
    }

    /// Deletes every session of `user` but `keep`; returns how many ended.
    pub async fn delete_others(&self, user: UserId, keep: &Id) -> Result<u64, sqlx::Error> {
        // Every other browser's session (counted), then the forward-auth sessions linked to
        // them (not to `keep`).
        let keep = stored_key(keep);
        let ended = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2 AND parent IS NULL")
            .bind(user)
            .bind(&keep)
            .execute(&self.pool)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND parent IS NOT NULL AND parent <> $2")
            .bind(user)
            .bind(&keep)
            .execute(&self.pool)
            .await?;
        self.cache.forget_user(user);
        Ok(ended)
    }

    /// The binding key of the session the request's cookie `name` names, read through
    /// the cache without the session layer: the status long-poll runs without that layer
    /// (each of thousands of waiting browsers would hold its state for a minute), and
    /// only reads. `None` without a cookie, or for a session that is unknown or expired.
    pub async fn browser_key_in(&self, headers: &axum::http::HeaderMap, name: &str) -> Result<Option<BrowserKey>, AppError> {
        let value = crate::server::http::headers::cookie(headers, name);
        let Some(id) = value.and_then(|v| v.parse::<Id>().ok()) else { return Ok(None) };
        let record = self.load(&id).await.map_err(|e| AppError::internal(format!("session store: {e}")))?;
        Ok(record.and_then(|mut r| match r.data.remove(BROWSER_KEY)? {
            serde_json::Value::String(key) => Some(BrowserKey(key)),
            _ => None,
        }))
    }

    fn row(r: &Record) -> StoreResult<(SessionKey, String, UnixMillis, Option<UserId>)> {
        let data = serde_json::to_string(&r.data).map_err(|e| StoreError::Encode(e.to_string()))?;
        Ok((stored_key(&r.id), data, millis(r.expiry_date), user_of(r)))
    }

    /// Rows written before sessions were stored under a digest (by a version that kept
    /// the id itself) are moved to their digest. On PostgreSQL a migration did this with
    /// the change trigger off (so no id was announced); SQLite has no SHA-256 in SQL, so
    /// it happens here, at start. Returns how many rows moved.
    pub async fn digest_legacy_ids(&self) -> Result<u64, sqlx::Error> {
        let legacy: Vec<(String,)> = sqlx::query_as("SELECT id FROM sessions WHERE length(id) <> 64").fetch_all(&self.pool).await?;
        let mut moved = 0;
        for (id,) in legacy {
            let key = crate::server::tokens::TokenHash::of(&id).as_str().to_string();
            moved +=
                sqlx::query("UPDATE sessions SET id = $2 WHERE id = $1").bind(&id).bind(key).execute(&self.pool).await?.rows_affected();
        }
        Ok(moved)
    }
}

#[async_trait]
impl SessionStore for SqlSessionStore {
    async fn create(&self, record: &mut Record) -> StoreResult<()> {
        for _ in 0..4 {
            let (id, data, expires, user) = Self::row(record)?;
            let res = sqlx::query("INSERT INTO sessions (id, data, expires_at, user_id) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(data)
                .bind(expires)
                .bind(user)
                .execute(&self.pool)
                .await;
            match res {
                Ok(_) => {
                    self.cache.created(record, user_of(record));
                    return Ok(());
                }
                Err(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => record.id = Id::default(),
                Err(e) => return Err(backend(e)),
            }
        }
        Err(StoreError::Backend("could not find a free session id".into()))
    }

    /// Updates a session that still exists, and only that: a request already in flight
    /// when its session was logged out or revoked must not bring it back (a save is
    /// never an insert here; new sessions come through `create`). Nor can a save sign
    /// an anonymous row in or change its user: signing in always makes a new id.
    async fn save(&self, record: &Record) -> StoreResult<()> {
        if self.cache.unchanged(record) {
            return Ok(());
        }
        let (id, data, expires, user) = Self::row(record)?;
        let updated = sqlx::query(
            "UPDATE sessions SET data = $2, expires_at = $3, user_id = $4 \
             WHERE id = $1 AND (CAST($4 AS BIGINT) IS NULL OR user_id = CAST($4 AS BIGINT))",
        )
        .bind(&id)
        .bind(data)
        .bind(expires)
        .bind(user)
        .execute(&self.pool)
        .await
        .map_err(backend)?
        .rows_affected();
        if updated == 0 {
            self.cache.forget(&id);
            tracing::debug!("a session that ended meanwhile was not saved again");
        } else {
            self.cache.wrote(record, user_of(record));
        }
        Ok(())
    }

    async fn load(&self, id: &Id) -> StoreResult<Option<Record>> {
        let now = OffsetDateTime::now_utc();
        let key = stored_key(id);
        let mark = match self.cache.get(&key, now) {
            Ok(record) => return Ok(Some(record)),
            Err(mark) => mark,
        };
        let now = millis(now);
        let row: Option<(String, i64)> = sqlx::query_as("SELECT data, expires_at FROM sessions WHERE id = $1 AND expires_at > $2")
            .bind(&key)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        let Some((data, expires)) = row else { return Ok(None) };
        let data = serde_json::from_str(&data).map_err(|e| StoreError::Decode(e.to_string()))?;
        let expiry_date =
            OffsetDateTime::from_unix_timestamp_nanos(expires as i128 * 1_000_000).map_err(|e| StoreError::Decode(e.to_string()))?;
        let record = Record { id: *id, data, expiry_date };
        self.cache.fill(mark, &record, user_of(&record));
        Ok(Some(record))
    }

    /// Retires a session. A session with a binding key lives on for a few seconds as an
    /// anonymous stub holding only that key (no user): when login rotates the id,
    /// requests already on their way with the old one (another tab, a double submit) keep
    /// following their tickets instead of finding no session — which would make the
    /// session layer send a cookie removal that could overwrite the new cookie. A fixed
    /// id gains an attacker nothing: the stub is never signed in. Logout removes the row
    /// outright ([`SqlSessionStore::remove`]).
    async fn delete(&self, id: &Id) -> StoreResult<()> {
        let id = stored_key(id);
        // The record as cached (the session layer has just read it), else as stored. A
        // session's binding key never changes (signing in makes a new id).
        let found = match self.cache.get(&id, OffsetDateTime::now_utc()) {
            Ok(r) => Some((r.data.get(BROWSER_KEY).cloned(), millis(r.expiry_date))),
            Err(_) => sqlx::query_as::<_, (String, i64)>("SELECT data, expires_at FROM sessions WHERE id = $1")
                .bind(&id)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?
                .map(|(data, expires)| {
                    let key = serde_json::from_str::<serde_json::Value>(&data).ok().and_then(|v| v.get(BROWSER_KEY).cloned());
                    (key, UnixMillis(expires))
                }),
        };
        match found {
            Some((Some(key), expires)) => {
                let stub = serde_json::json!({ BROWSER_KEY: key }).to_string();
                let grace = millis(OffsetDateTime::now_utc()).plus(ROTATED_GRACE);
                sqlx::query("UPDATE sessions SET data = $2, user_id = NULL, expires_at = $3 WHERE id = $1")
                    .bind(&id)
                    .bind(stub)
                    .bind(expires.min(grace))
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                self.cache.forget(&id);
            }
            _ => self.remove_stored(&id).await.map_err(backend)?,
        }
        Ok(())
    }
}

/// The session cookie's name: on https, `__Host-` pins it to this host, Secure, path `/`.
/// It never carries a `Domain`: with `COOKIE_DOMAIN`, forward-auth has a cookie of its own
/// ([`forward_auth_cookie_name`]).
pub fn cookie_name(secure: bool) -> &'static str {
    if secure { "__Host-scanlogin_session" } else { "scanlogin_session" }
}

/// The forward-auth cookie's name (`COOKIE_DOMAIN` set): sent to every app under the
/// domain, accepted only by `/auth/verify`.
pub fn forward_auth_cookie_name(secure: bool) -> &'static str {
    if secure { "__Secure-scanlogin_fa" } else { "scanlogin_fa" }
}

/// The browser's session, typed.
#[derive(Clone, Debug)]
pub struct WebSession {
    session: Session,
    life: SessionLifetimes,
}

/// A handler's `WebSession`: the session layer's session with the site's lifetimes.
impl axum::extract::FromRequestParts<crate::server::state::AppState> for WebSession {
    type Rejection = <Session as axum::extract::FromRequestParts<crate::server::state::AppState>>::Rejection;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        st: &crate::server::state::AppState,
    ) -> Result<Self, Self::Rejection> {
        let session = <Session as axum::extract::FromRequestParts<_>>::from_request_parts(parts, st).await?;
        Ok(WebSession::new(session, st.site.session_life))
    }
}

impl WebSession {
    /// `session` with these lifetimes.
    pub fn new(session: Session, life: SessionLifetimes) -> Self {
        WebSession { session, life }
    }

    /// The session of the request being served (inside a server function).
    pub async fn current(life: SessionLifetimes) -> Result<Self, AppError> {
        let s: Session = leptos_axum::extract().await.map_err(|e| AppError::internal(format!("no session layer: {e}")))?;
        Ok(WebSession::new(s, life))
    }

    /// This browser's binding key, created on first use (which makes the session: an
    /// anonymous one, short-lived).
    pub async fn browser_key(&self) -> Result<BrowserKey, AppError> {
        if let Some(k) = self.session.get::<String>(BROWSER_KEY).await? {
            return Ok(BrowserKey(k));
        }
        let key = crate::server::tokens::random_token(16);
        self.session.insert(BROWSER_KEY, &key).await?;
        if self.session.get::<SignedIn>(SIGNED_IN).await?.is_none() {
            self.session.set_expiry(Some(inactivity(self.life.anonymous)));
        }
        Ok(BrowserKey(key))
    }

    /// The binding key if this browser already has one (never creates a session).
    pub async fn existing_browser_key(&self) -> Result<Option<BrowserKey>, AppError> {
        Ok(self.session.get::<String>(BROWSER_KEY).await?.map(BrowserKey))
    }

    /// [`WebSession::signed_in`] now, by the state's clock and the site's absolute
    /// lifetime: what every handler asks.
    pub async fn signed_in_now(&self, st: &crate::server::state::State) -> Result<Option<SignedIn>, AppError> {
        self.signed_in(st.clock.now(), st.site.session_absolute).await
    }

    /// Who is signed in, if the login is younger than `absolute`. An older login is
    /// ended here (absolute expiry, whatever the activity).
    pub async fn signed_in(&self, now: UnixMillis, absolute: Duration) -> Result<Option<SignedIn>, AppError> {
        let Some(mut s) = self.session.get::<SignedIn>(SIGNED_IN).await? else { return Ok(None) };
        if now.since(s.login_at) > absolute {
            self.sign_out().await?;
            return Ok(None);
        }
        // Activity slides the idle expiry, but writes at most once an hour.
        if now.since(s.seen_at) >= TOUCH_EVERY {
            s.seen_at = now;
            self.session.insert(SIGNED_IN, &s).await?;
            self.session.set_expiry(Some(inactivity(self.life.signed_in)));
        }
        Ok(Some(s))
    }

    /// Signs `who` in: a new session id and a new binding key (against fixation: a
    /// planted or copied pre-login cookie is worth nothing afterwards; the store retires
    /// the old id, see [`SqlSessionStore::delete`]), the idle expiry of a signed-in
    /// session, and the session saved now, before the caller marks the ticket consumed.
    pub async fn sign_in(&self, who: &SignedIn) -> Result<(), AppError> {
        self.session.cycle_id().await?;
        self.session.insert(BROWSER_KEY, crate::server::tokens::random_token(16)).await?;
        self.session.insert(SIGNED_IN, who).await?;
        self.session.set_expiry(Some(inactivity(self.life.signed_in)));
        Ok(self.session.save().await?)
    }

    /// The session id, once it has one.
    pub fn id(&self) -> Option<Id> {
        self.session.id()
    }

    /// Undoes [`WebSession::sign_in`] when the ticket could not be consumed after all.
    pub async fn undo_sign_in(&self) -> Result<(), AppError> {
        self.session.remove_value(SIGNED_IN).await?;
        self.session.set_expiry(Some(inactivity(self.life.anonymous)));
        Ok(self.session.save().await?)
    }

    /// Ends the session: deleted from the store, the cookie cleared.
    pub async fn sign_out(&self) -> Result<(), AppError> {
        Ok(self.session.flush().await?)
    }
}
