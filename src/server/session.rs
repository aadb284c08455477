//! Sessions: tower-sessions with our own store over the app's database (so sessions
//! share the pool, the migrations and the purge task, and can be listed per user), and
//! a small typed wrapper so handlers never touch string keys.

use crate::error::AppError;
use async_trait::async_trait;
use sqlx::AnyPool;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error as StoreError, Result as StoreResult};
use tower_sessions::{Session, SessionStore};

const BROWSER_KEY: &str = "browser_key";
const USER_ID: &str = "user_id";
const LOGIN_AT: &str = "login_at";
const LOGIN_IP: &str = "login_ip";
const LOGIN_UA: &str = "login_ua";
const SEEN_AT: &str = "seen_at";

/// After login rotates the session id, the old id stays this long as an anonymous
/// session holding only the binding key.
const ROTATED_GRACE_SECS: i64 = 30;

/// A signed-in session is re-saved (sliding its idle expiry) at most this often.
const TOUCH_EVERY_MS: i64 = 3_600_000;

/// One signed-in browser of a user, as listed on the account page.
#[derive(Clone, Debug)]
pub struct SignedInBrowser {
    /// The session id (never sent to a browser).
    pub id: String,
    /// User agent at login.
    pub user_agent: String,
    /// IP at login.
    pub ip: String,
    /// Login time, epoch ms.
    pub login_at: i64,
    /// Last activity (to the hour), epoch ms.
    pub seen_at: i64,
}

/// Sessions in the `sessions` table.
#[derive(Clone, Debug)]
pub struct SqlSessionStore {
    pool: AnyPool,
}

fn epoch_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqlSessionStore {
    /// A store over `pool`.
    pub fn new(pool: AnyPool) -> Self {
        SqlSessionStore { pool }
    }

    /// Deletes sessions that expired before `now_ms`.
    pub async fn delete_expired(&self, now_ms: i64) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at < $1").bind(now_ms).execute(&self.pool).await?.rows_affected())
    }

    /// The user's live signed-in sessions, most recently seen first.
    pub async fn list_for_user(&self, user: i64, now_ms: i64) -> Result<Vec<SignedInBrowser>, sqlx::Error> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT id, data FROM sessions WHERE user_id = $1 AND expires_at > $2").bind(user).bind(now_ms).fetch_all(&self.pool).await?;
        let mut list: Vec<SignedInBrowser> = rows
            .into_iter()
            .filter_map(|(id, data)| {
                let v: serde_json::Value = serde_json::from_str(&data).ok()?;
                let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
                let n = |k: &str| v.get(k).and_then(|x| x.as_i64()).unwrap_or(0);
                Some(SignedInBrowser { id, user_agent: s(LOGIN_UA), ip: s(LOGIN_IP), login_at: n(LOGIN_AT), seen_at: n(SEEN_AT).max(n(LOGIN_AT)) })
            })
            .collect();
        list.sort_by_key(|s| std::cmp::Reverse(s.seen_at));
        Ok(list)
    }

    /// Removes a session row outright.
    pub async fn remove(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM sessions WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Deletes every session of `user` but `keep`; returns how many ended.
    pub async fn delete_others(&self, user: i64, keep: &str) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2").bind(user).bind(keep).execute(&self.pool).await?.rows_affected())
    }

    fn row(r: &Record) -> StoreResult<(String, String, i64, Option<i64>)> {
        let data = serde_json::to_string(&r.data).map_err(|e| StoreError::Encode(e.to_string()))?;
        let expires = epoch_ms(r.expiry_date);
        let user = r.data.get(USER_ID).and_then(|v| v.as_i64());
        Ok((r.id.to_string(), data, expires, user))
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
                Ok(_) => return Ok(()),
                Err(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => record.id = Id::default(),
                Err(e) => return Err(backend(e)),
            }
        }
        Err(StoreError::Backend("could not find a free session id".into()))
    }

    async fn save(&self, record: &Record) -> StoreResult<()> {
        let (id, data, expires, user) = Self::row(record)?;
        sqlx::query(
            "INSERT INTO sessions (id, data, expires_at, user_id) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at, user_id = excluded.user_id",
        )
        .bind(id)
        .bind(data)
        .bind(expires)
        .bind(user)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> StoreResult<Option<Record>> {
        let now = epoch_ms(OffsetDateTime::now_utc());
        let row: Option<(String, i64)> = sqlx::query_as("SELECT data, expires_at FROM sessions WHERE id = $1 AND expires_at > $2")
            .bind(id.to_string())
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        let Some((data, expires)) = row else { return Ok(None) };
        let data = serde_json::from_str(&data).map_err(|e| StoreError::Decode(e.to_string()))?;
        let expiry_date = OffsetDateTime::from_unix_timestamp_nanos(expires as i128 * 1_000_000)
            .map_err(|e| StoreError::Decode(e.to_string()))?;
        Ok(Some(Record { id: *id, data, expiry_date }))
    }

    /// Retires a session. A session with a binding key lives on for a few seconds as an
    /// anonymous stub holding only that key (no user): when login rotates the id,
    /// requests already on their way with the old one (another tab, a double submit) keep
    /// following their tickets instead of finding no session — which would make the
    /// session layer send a cookie removal that could overwrite the new cookie. A fixed
    /// id gains an attacker nothing: the stub is never signed in. Logout removes the row
    /// outright ([`SqlSessionStore::remove`]).
    async fn delete(&self, id: &Id) -> StoreResult<()> {
        let id = id.to_string();
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT data, expires_at FROM sessions WHERE id = $1").bind(&id).fetch_optional(&self.pool).await.map_err(backend)?;
        let key = row.as_ref().and_then(|(data, _)| {
            serde_json::from_str::<serde_json::Value>(data).ok()?.get(BROWSER_KEY).cloned()
        });
        match (row, key) {
            (Some((_, expires)), Some(key)) => {
                let stub = serde_json::json!({ BROWSER_KEY: key }).to_string();
                let grace = epoch_ms(OffsetDateTime::now_utc()) + ROTATED_GRACE_SECS * 1000;
                sqlx::query("UPDATE sessions SET data = $2, user_id = NULL, expires_at = $3 WHERE id = $1")
                    .bind(&id)
                    .bind(stub)
                    .bind(expires.min(grace))
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
            }
            _ => self.remove(&id).await.map_err(backend)?,
        }
        Ok(())
    }
}

fn session_err(e: tower_sessions::session::Error) -> AppError {
    AppError::internal(format!("session: {e}"))
}

/// The browser's session, typed.
#[derive(Clone, Debug)]
pub struct WebSession(pub Session);

impl WebSession {
    /// The session of the request being served (inside a server function).
    pub async fn current() -> Result<Self, AppError> {
        let s: Session = leptos_axum::extract().await.map_err(|e| AppError::internal(format!("no session layer: {e}")))?;
        Ok(WebSession(s))
    }

    /// This browser's binding key: created on first use, kept for the session's life
    /// (also across `cycle_id` at login, so other tabs keep following their tickets).
    pub async fn browser_key(&self) -> Result<String, AppError> {
        if let Some(k) = self.0.get::<String>(BROWSER_KEY).await.map_err(session_err)? {
            return Ok(k);
        }
        let key = crate::server::rules::random_token(16);
        self.0.insert(BROWSER_KEY, &key).await.map_err(session_err)?;
        Ok(key)
    }

    /// The binding key if this browser already has one (never creates a session).
    pub async fn existing_browser_key(&self) -> Result<Option<String>, AppError> {
        self.0.get::<String>(BROWSER_KEY).await.map_err(session_err)
    }

    /// The signed-in user, if the login is younger than `absolute_ms`. An older login
    /// is ended here (absolute expiry, whatever the activity).
    pub async fn user_id(&self, now: i64, absolute_ms: i64) -> Result<Option<i64>, AppError> {
        let Some(user) = self.0.get::<i64>(USER_ID).await.map_err(session_err)? else { return Ok(None) };
        let at = self.0.get::<i64>(LOGIN_AT).await.map_err(session_err)?.unwrap_or(0);
        if now - at > absolute_ms {
            self.sign_out().await?;
            return Ok(None);
        }
        // Activity slides the idle expiry, but writes at most once an hour.
        let seen = self.0.get::<i64>(SEEN_AT).await.map_err(session_err)?.unwrap_or(at);
        if now - seen >= TOUCH_EVERY_MS {
            self.0.insert(SEEN_AT, now).await.map_err(session_err)?;
        }
        Ok(Some(user))
    }

    /// Signs `user` in: a new session id (against fixation; the store retires the old
    /// one, see [`SqlSessionStore::delete`]), the user stored, and the session saved now,
    /// before the caller marks the ticket consumed.
    pub async fn sign_in(&self, user: i64, now: i64, ip: &str, user_agent: &str) -> Result<(), AppError> {
        self.0.cycle_id().await.map_err(session_err)?;
        self.0.insert(USER_ID, user).await.map_err(session_err)?;
        self.0.insert(LOGIN_AT, now).await.map_err(session_err)?;
        self.0.insert(SEEN_AT, now).await.map_err(session_err)?;
        self.0.insert(LOGIN_IP, ip).await.map_err(session_err)?;
        self.0.insert(LOGIN_UA, user_agent).await.map_err(session_err)?;
        self.0.save().await.map_err(session_err)
    }

    /// The session id, once it has one.
    pub fn id(&self) -> Option<String> {
        self.0.id().map(|id| id.to_string())
    }

    /// Undoes [`WebSession::sign_in`] when the ticket could not be consumed after all.
    pub async fn undo_sign_in(&self) -> Result<(), AppError> {
        for key in [USER_ID, LOGIN_AT, SEEN_AT, LOGIN_IP, LOGIN_UA] {
            self.0.remove_value(key).await.map_err(session_err)?;
        }
        self.0.save().await.map_err(session_err)
    }

    /// Ends the session: deleted from the store, the cookie cleared.
    pub async fn sign_out(&self) -> Result<(), AppError> {
        self.0.flush().await.map_err(session_err)
    }
}
