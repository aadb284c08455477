//! One access token for the fleet: instances on one PostgreSQL database (in real mode)
//! keep the token in `wechat_tokens`, so the fleet fetches it once, not once per
//! instance. A fetch happens under a transaction-scoped advisory lock: one instance
//! fetches, the others wait on the lock and then read what it stored. A token WeChat
//! refused is deleted only if it is still the stored one, so a 40001 seen by several
//! instances makes one refetch. Each instance's in-memory cache stays in front.

use super::parse::WechatError;
use super::token::AccessToken;
use crate::domain::UnixMillis;
use crate::server::clock::Clock;
use crate::server::db::Db;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The advisory lock key of token fetches ("scanlog").
const LOCK_KEY: i64 = 0x0073_6361_6e6c_6f67;

/// The shared token store.
pub struct FleetTokens {
    db: Db,
    appid: String,
    clock: Arc<dyn Clock>,
    margin: Duration,
}

fn store(e: sqlx::Error) -> WechatError {
    WechatError::Transport(format!("token store: {e}"))
}

impl FleetTokens {
    /// Tokens of `appid` in `db`, refreshed `margin_secs` before expiry (at most half
    /// their lifetime, as the in-memory cache does).
    pub fn new(db: Db, appid: String, clock: Arc<dyn Clock>, margin_secs: u64) -> Self {
        FleetTokens { db, appid, clock, margin: Duration::from_secs(margin_secs.min(299)) }
    }

    /// The stored token and its remaining seconds, if it is fresh.
    async fn read_fresh<'c>(&self, conn: impl sqlx::Executor<'c, Database = sqlx::Any>) -> Result<Option<(AccessToken, u64)>, WechatError> {
        let row: Option<(String, i64, i64)> = sqlx::query_as("SELECT token, fetched_at, expires_at FROM wechat_tokens WHERE appid = $1")
            .bind(&self.appid)
            .fetch_optional(conn)
            .await
            .map_err(store)?;
        let now = self.clock.now();
        Ok(row.and_then(|(token, fetched_at, expires_at)| {
            let (fetched_at, expires_at) = (UnixMillis(fetched_at), UnixMillis(expires_at));
            super::token::is_fresh(fetched_at, expires_at, self.margin, now)
                .then(|| (AccessToken::new(token), now.until(expires_at).as_secs()))
        }))
    }

    /// The fleet's token when fresh; otherwise `fetch`'s (`(token, expires_in)`), fetched
    /// by one instance at a time and stored for the others.
    pub async fn get_or_fetch<F, Fut>(&self, fetch: F) -> Result<(AccessToken, u64), WechatError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(AccessToken, u64), WechatError>>,
    {
        if let Some(t) = self.read_fresh(&self.db).await? {
            return Ok(t);
        }
        let mut conn = self.db.acquire().await.map_err(store)?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(store)?;
        // pg_advisory_xact_lock returns void, which the Any driver cannot decode: count it.
        sqlx::query("SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock($1)) AS l")
            .bind(LOCK_KEY)
            .execute(&mut *tx)
            .await
            .map_err(store)?;
        if let Some(t) = self.read_fresh(&mut *tx).await? {
            tx.commit().await.map_err(store)?;
            return Ok(t);
        }
        let (token, expires_in) = fetch().await?;
        let now = self.clock.now();
        let expires_at = now.plus(Duration::from_secs(expires_in));
        sqlx::query(
            "INSERT INTO wechat_tokens (appid, token, fetched_at, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (appid) DO UPDATE SET token = EXCLUDED.token, fetched_at = EXCLUDED.fetched_at, expires_at = EXCLUDED.expires_at",
        )
        .bind(&self.appid)
        .bind(token.expose())
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(store)?;
        tx.commit().await.map_err(store)?;
        Ok((token, expires_in))
    }

    /// Deletes `failed` if it is still the stored token.
    pub async fn invalidate(&self, failed: &AccessToken) {
        let deleted = sqlx::query("DELETE FROM wechat_tokens WHERE appid = $1 AND token = $2")
            .bind(&self.appid)
            .bind(failed.expose())
            .execute(&self.db)
            .await;
        if let Err(e) = deleted {
            tracing::warn!(error = %e, "could not drop a refused token from the shared store");
        }
    }
}
