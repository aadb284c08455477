//! Users (found by unionid, else openid) and their login history.

use crate::domain::{TicketId, UnixMillis};
use crate::server::db::Db;
use crate::server::wechat::WxIdentity;

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    /// Our id.
    pub id: i64,
    /// The mini program's openid.
    pub openid: String,
    /// The Open Platform unionid, once known.
    pub unionid: Option<String>,
    pub name: String,
    pub created_at: UnixMillis,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Login {
    pub at: UnixMillis,
    pub ip: String,
    pub user_agent: String,
}

pub(crate) const USER_COLUMNS: &str = "id, openid, unionid, name, created_at";

/// Users and logins in the app's database.
#[derive(Clone, Debug)]
pub struct SqlUserStore {
    pool: Db,
    /// Display names by user id: forward-auth asks for one on every proxied request, and a
    /// name never changes once given (nothing renames users), so a bounded cache is exact.
    names: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<i64, String>>>,
}

/// Names kept at most (the cache starts over past this).
const NAMES_CACHED: usize = 10_000;

impl SqlUserStore {
    /// A store over `pool`.
    pub fn new(pool: Db) -> Self {
        SqlUserStore { pool, names: Default::default() }
    }

    /// The display name of user `id`.
    pub async fn name(&self, id: i64) -> Result<Option<String>, sqlx::Error> {
        if let Some(n) = self.names.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
            return Ok(Some(n.clone()));
        }
        let Some(user) = self.get(id).await? else { return Ok(None) };
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if names.len() >= NAMES_CACHED {
            names.clear();
        }
        names.insert(id, user.name.clone());
        Ok(Some(user.name))
    }

    async fn by(&self, column: &str, value: &str) -> Result<Option<User>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE {column} = $1")).bind(value).fetch_optional(&self.pool).await
    }

    pub async fn get(&self, id: i64) -> Result<Option<User>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")).bind(id).fetch_optional(&self.pool).await
    }

    /// Finds the person without creating them: by unionid when WeChat sent one, else by openid.
    pub async fn find(&self, who: &WxIdentity) -> Result<Option<User>, sqlx::Error> {
        let Some(unionid) = &who.unionid else { return self.by("openid", &who.openid).await };
        // One read for both: the unionid's account first.
        sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE unionid = $1 OR openid = $2 \
             ORDER BY CASE WHEN unionid = $1 THEN 0 ELSE 1 END LIMIT 1"
        ))
        .bind(unionid)
        .bind(&who.openid)
        .fetch_optional(&self.pool)
        .await
    }

    /// The account of `who`: `known` (what [`find`] returned) with the unionid attached
    /// when WeChat sends one for the first time, so the account stays the same when the
    /// mini program gets bound to an Open Platform account; or a new account on first
    /// sight. Safe under concurrency: a lost insert race reads the winner.
    pub async fn find_or_create(&self, who: &WxIdentity, known: Option<User>, now: UnixMillis) -> Result<User, sqlx::Error> {
        if let Some(mut u) = known {
            if let (Some(unionid), None) = (&who.unionid, &u.unionid) {
                sqlx::query("UPDATE users SET unionid = $1 WHERE id = $2 AND unionid IS NULL")
                    .bind(unionid)
                    .bind(u.id)
                    .execute(&self.pool)
                    .await?;
                u.unionid = Some(unionid.clone());
            }
            return Ok(u);
        }
        let tail: String = who.openid.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        let name = format!("微信用户 {tail}");
        let inserted: Result<(i64,), sqlx::Error> =
            sqlx::query_as("INSERT INTO users (openid, unionid, name, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
                .bind(&who.openid)
                .bind(who.unionid.clone())
                .bind(&name)
                .bind(now)
                .fetch_one(&self.pool)
                .await;
        match inserted {
            Ok((id,)) => Ok(User { id, openid: who.openid.clone(), unionid: who.unionid.clone(), name, created_at: now }),
            // A concurrent first login of the same person won the race: theirs it is.
            Err(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => self.find(who).await?.ok_or(e),
            Err(e) => Err(e),
        }
    }

    /// Records a login (one per ticket).
    pub async fn record_login(&self, user: i64, at: UnixMillis, ip: &str, user_agent: &str, ticket: &TicketId) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO logins (user_id, at, ip, user_agent, ticket_id) VALUES ($1, $2, $3, $4, $5)")
            .bind(user)
            .bind(at)
            .bind(ip)
            .bind(user_agent)
            .bind(ticket.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The latest logins of a user, newest first.
    pub async fn recent_logins(&self, user: i64, limit: i64) -> Result<Vec<Login>, sqlx::Error> {
        sqlx::query_as("SELECT at, ip, user_agent FROM logins WHERE user_id = $1 ORDER BY at DESC, id DESC LIMIT $2")
            .bind(user)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
    }
}
