//! Users (found by unionid, else openid), what they may do (status, admin, groups), and
//! their login history.
//!
//! Users are read through a small cache, since forward-auth asks who a session's user is
//! on every proxied request. Its entries are exact, not merely fresh: this instance
//! forgets a user in the same call that changes them, other instances on the same
//! PostgreSQL database hear of every changed row through a trigger's `NOTIFY` (see
//! `server::changes`), and while that listener is not connected the cache serves
//! nothing. A read that started before an invalidation never fills it.

use crate::domain::{GroupName, UnixMillis, UserId, UserStatus};
use crate::server::db::Db;
use crate::server::wechat::WxIdentity;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// A person, as scanlogin knows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Our id.
    pub id: UserId,
    /// The mini program's openid.
    pub openid: String,
    /// The Open Platform unionid, once known.
    pub unionid: Option<String>,
    pub name: String,
    pub created_at: UnixMillis,
    pub status: UserStatus,
    /// Administers scanlogin.
    pub admin: bool,
    pub groups: Vec<GroupName>,
    /// When the person chose their nickname (none: still WeChat's default).
    pub profile_at: Option<UnixMillis>,
    /// Their avatar (`avatars.id`), if they set one.
    pub avatar_id: Option<String>,
    /// Their verified email address (`server::email`); unverified ones are never kept here.
    pub email: Option<String>,
}

impl User {
    /// A user as first seen: `status` decided by the sign-up policy.
    pub fn new(id: UserId, who: &WxIdentity, name: String, created_at: UnixMillis, status: UserStatus) -> Self {
        User {
            id,
            openid: who.openid.clone(),
            unionid: who.unionid.clone(),
            name,
            created_at,
            status,
            admin: false,
            groups: Vec::new(),
            profile_at: None,
            avatar_id: None,
            email: None,
        }
    }

    /// Neither a chosen nickname nor an avatar: the mini program offers 头像昵称填写.
    pub fn profile_missing(&self) -> bool {
        self.profile_at.is_none() && self.avatar_id.is_none()
    }

    /// The avatar's absolute URL under `public_url`.
    pub fn picture(&self, public_url: &str) -> Option<String> {
        self.avatar_id.as_ref().map(|id| format!("{public_url}/avatars/{id}.png"))
    }

    /// Whether protected sites may admit them at all (rules decide the rest).
    pub fn is_active(&self) -> bool {
        self.status == UserStatus::Active
    }
}

/// Groups as stored: comma-separated names (names never contain a comma).
pub fn join_groups(groups: &[GroupName]) -> String {
    groups.iter().map(GroupName::as_str).collect::<Vec<_>>().join(",")
}

fn split_groups(stored: &str) -> Vec<GroupName> {
    stored.split(',').filter_map(|g| GroupName::try_from(g).ok()).collect()
}

impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for User {
    fn from_row(row: &'r sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row as _;
        let status: String = row.try_get("status")?;
        let groups: String = row.try_get("group_names")?;
        Ok(User {
            id: row.try_get("id")?,
            openid: row.try_get("openid")?,
            unionid: row.try_get("unionid")?,
            name: row.try_get("name")?,
            created_at: UnixMillis(row.try_get("created_at")?),
            status: UserStatus::parse(&status).ok_or_else(|| sqlx::Error::Decode(format!("unknown user status {status:?}").into()))?,
            admin: row.try_get::<i64, _>("admin")? != 0,
            groups: split_groups(&groups),
            profile_at: row.try_get::<Option<i64>, _>("profile_at")?.map(UnixMillis),
            avatar_id: row.try_get("avatar_id")?,
            email: row.try_get("email")?,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Login {
    pub at: UnixMillis,
    pub ip: String,
    pub user_agent: String,
}

pub const USER_COLUMNS: &str = "id, openid, unionid, name, created_at, status, admin, group_names, profile_at, avatar_id, email";

/// Users kept at most (the cache starts over past this).
const USERS_CACHED: usize = 10_000;

/// Users by id in memory, exact (see the module's comment).
#[derive(Debug, Default)]
pub struct UserCache {
    inner: Mutex<(HashMap<UserId, User>, u64)>,
    /// Whether entries may be served: always on SQLite; on PostgreSQL only while the
    /// change listener is connected.
    armed: AtomicBool,
}

impl UserCache {
    /// A cache; `armed` says whether it serves from the start.
    pub fn new(armed: bool) -> Self {
        UserCache { inner: Mutex::default(), armed: AtomicBool::new(armed) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<UserId, User>, u64)> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The user `id` if cached; otherwise the epoch to fill with after reading.
    fn get(&self, id: UserId) -> Result<User, u64> {
        let inner = self.lock();
        match inner.0.get(&id) {
            Some(u) if self.armed.load(Ordering::Acquire) => Ok(u.clone()),
            _ => Err(inner.1),
        }
    }

    /// The epoch to fill with after a read or write that starts now.
    fn epoch(&self) -> u64 {
        self.lock().1
    }

    fn fill(&self, epoch: u64, user: &User) {
        if !self.armed.load(Ordering::Acquire) {
            return;
        }
        let mut inner = self.lock();
        if inner.1 != epoch {
            return;
        }
        if inner.0.len() >= USERS_CACHED {
            inner.0.clear();
        }
        inner.0.insert(user.id, user.clone());
    }

    /// Forgets user `id` (changed here or, as announced, elsewhere).
    pub fn forget(&self, id: UserId) {
        let mut inner = self.lock();
        inner.0.remove(&id);
        inner.1 += 1;
    }

    /// Serves nothing and forgets everything (the change listener is not connected).
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::Release);
        let mut inner = self.lock();
        inner.0.clear();
        inner.1 += 1;
    }

    /// Serves again (the change listener is connected; nothing is missed from now on).
    pub fn arm(&self) {
        let mut inner = self.lock();
        inner.0.clear();
        inner.1 += 1;
        self.armed.store(true, Ordering::Release);
    }
}

/// Users and logins in the app's database.
#[derive(Clone, Debug)]
pub struct SqlUserStore {
    pool: Db,
    cache: std::sync::Arc<UserCache>,
}

impl SqlUserStore {
    /// A store over `pool`, reading through `cache`.
    pub fn new(pool: Db, cache: std::sync::Arc<UserCache>) -> Self {
        SqlUserStore { pool, cache }
    }

    /// The cache (for the PostgreSQL listener that keeps it exact).
    pub fn cache(&self) -> std::sync::Arc<UserCache> {
        self.cache.clone()
    }

    /// User `id` through the cache: for the requests that only read who someone is and
    /// what they may do (forward-auth, OIDC, the phone).
    pub async fn cached(&self, id: UserId) -> Result<Option<User>, sqlx::Error> {
        let epoch = match self.cache.get(id) {
            Ok(u) => return Ok(Some(u)),
            Err(epoch) => epoch,
        };
        let user = self.get(id).await?;
        if let Some(u) = &user {
            self.cache.fill(epoch, u);
        }
        Ok(user)
    }

    async fn by(&self, column: &str, value: &str) -> Result<Option<User>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE {column} = $1")).bind(value).fetch_optional(&self.pool).await
    }

    pub async fn get(&self, id: UserId) -> Result<Option<User>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")).bind(id).fetch_optional(&self.pool).await
    }

    /// Finds the person without creating them: by unionid when WeChat sent one, else by
    /// openid. What is found is cached, for the finalize that follows a scan.
    pub async fn find(&self, who: &WxIdentity) -> Result<Option<User>, sqlx::Error> {
        let epoch = self.cache.epoch();
        let found = match &who.unionid {
            None => self.by("openid", &who.openid).await?,
            // One read for both: the unionid's account first.
            Some(unionid) => {
                sqlx::query_as(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE unionid = $1 OR openid = $2 \
                     ORDER BY CASE WHEN unionid = $1 THEN 0 ELSE 1 END LIMIT 1"
                ))
                .bind(unionid)
                .bind(&who.openid)
                .fetch_optional(&self.pool)
                .await?
            }
        };
        if let Some(u) = &found {
            self.cache.fill(epoch, u);
        }
        Ok(found)
    }

    /// The account of `who`: `known` (what [`find`] returned) with the unionid attached
    /// when WeChat sends one for the first time, so the account stays the same when the
    /// mini program gets bound to an Open Platform account; or a new account on first
    /// sight. Safe under concurrency: a lost insert race reads the winner.
    pub async fn find_or_create(
        &self,
        who: &WxIdentity,
        known: Option<User>,
        now: UnixMillis,
        status: UserStatus,
    ) -> Result<User, sqlx::Error> {
        if let Some(mut u) = known {
            if let (Some(unionid), None) = (&who.unionid, &u.unionid) {
                sqlx::query("UPDATE users SET unionid = $1 WHERE id = $2 AND unionid IS NULL")
                    .bind(unionid)
                    .bind(u.id)
                    .execute(&self.pool)
                    .await?;
                self.cache.forget(u.id);
                u.unionid = Some(unionid.clone());
            }
            return Ok(u);
        }
        let tail: String = who.openid.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        let name = format!("微信用户 {tail}");
        let epoch = self.cache.epoch();
        let inserted: Result<(i64,), sqlx::Error> =
            sqlx::query_as("INSERT INTO users (openid, unionid, name, created_at, status) VALUES ($1, $2, $3, $4, $5) RETURNING id")
                .bind(&who.openid)
                .bind(who.unionid.clone())
                .bind(&name)
                .bind(now)
                .bind(status.as_str())
                .fetch_one(&self.pool)
                .await;
        match inserted {
            Ok((id,)) => {
                let user = User::new(UserId(id), who, name, now, status);
                self.cache.fill(epoch, &user);
                Ok(user)
            }
            // A concurrent first login of the same person won the race: theirs it is.
            Err(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => self.find(who).await?.ok_or(e),
            Err(e) => Err(e),
        }
    }

    /// Every user with their last login, newest first, at most `limit`.
    pub async fn list(&self, limit: i64) -> Result<Vec<(User, Option<UnixMillis>)>, sqlx::Error> {
        let users: Vec<User> = sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id DESC LIMIT $1"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let last: Vec<(UserId, i64)> = sqlx::query_as("SELECT user_id, MAX(at) FROM logins GROUP BY user_id").fetch_all(&self.pool).await?;
        let last: HashMap<UserId, i64> = last.into_iter().collect();
        Ok(users
            .into_iter()
            .map(|u| {
                let at = last.get(&u.id).copied().map(UnixMillis);
                (u, at)
            })
            .collect())
    }

    /// The last login of user `id`.
    pub async fn last_login(&self, id: UserId) -> Result<Option<UnixMillis>, sqlx::Error> {
        let (at,): (Option<i64>,) = sqlx::query_as("SELECT MAX(at) FROM logins WHERE user_id = $1").bind(id).fetch_one(&self.pool).await?;
        Ok(at.map(UnixMillis))
    }

    /// How many users are `status`.
    pub async fn count_status(&self, status: UserStatus) -> Result<i64, sqlx::Error> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM users WHERE status = $1").bind(status.as_str()).fetch_one(&self.pool).await?;
        Ok(n)
    }

    /// How many active admins there are.
    pub async fn count_active_admins(&self) -> Result<i64, sqlx::Error> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users WHERE admin = 1 AND status = 'active'").fetch_one(&self.pool).await?;
        Ok(n)
    }

    /// Writes `user`'s status, admin flag and groups, as one statement (other instances
    /// hear of it through the trigger; this one forgets it at once).
    pub async fn save_access(&self, user: &User) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE users SET status = $2, admin = $3, group_names = $4 WHERE id = $1")
            .bind(user.id)
            .bind(user.status.as_str())
            .bind(i64::from(user.admin))
            .bind(join_groups(&user.groups))
            .execute(&self.pool)
            .await?;
        self.cache.forget(user.id);
        Ok(())
    }

    /// [`SqlUserStore::save_access`] for a change that takes an active admin away (demoted,
    /// made pending or disabled): written only while another active admin remains, decided
    /// in the same statement. On PostgreSQL the other admins' rows are locked while it
    /// decides, so two admins demoting each other at once cannot both succeed (the second
    /// waits, then finds no other admin). False: nothing written.
    pub async fn save_access_keeping_an_admin(&self, user: &User) -> Result<bool, sqlx::Error> {
        let lock = if self.pool.backend() == crate::server::db::Backend::Postgres { " FOR UPDATE" } else { "" };
        let sql = format!(
            "UPDATE users SET status = $2, admin = $3, group_names = $4 WHERE id = $1 \
             AND EXISTS (SELECT 1 FROM users o WHERE o.admin = 1 AND o.status = 'active' AND o.id <> $1{lock})"
        );
        let written = sqlx::query(&sql)
            .bind(user.id)
            .bind(user.status.as_str())
            .bind(i64::from(user.admin))
            .bind(join_groups(&user.groups))
            .execute(&self.pool)
            .await?
            .rows_affected();
        self.cache.forget(user.id);
        Ok(written == 1)
    }

    /// The person's chosen nickname (checked by the caller).
    pub async fn set_name(&self, id: UserId, name: &str, now: UnixMillis) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE users SET name = $2, profile_at = $3 WHERE id = $1").bind(id).bind(name).bind(now).execute(&self.pool).await?;
        self.cache.forget(id);
        Ok(())
    }

    /// Stores `png` (already re-encoded) as user `id`'s avatar; its id, the SHA-256 of the
    /// bytes, names an immutable URL.
    pub async fn set_avatar(&self, id: UserId, png: &[u8], now: UnixMillis) -> Result<String, sqlx::Error> {
        let key = crate::server::tokens::TokenHash::of_bytes(png).as_str().to_string();
        sqlx::query("INSERT INTO avatars (id, png, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
            .bind(&key)
            .bind(png.to_vec())
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query("UPDATE users SET avatar_id = $2 WHERE id = $1").bind(id).bind(&key).execute(&self.pool).await?;
        self.cache.forget(id);
        Ok(key)
    }

    /// Sets (or clears) the person's verified email; the unique index refuses an address
    /// another person has.
    pub async fn set_email(&self, id: UserId, email: Option<&str>) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE users SET email = $2 WHERE id = $1").bind(id).bind(email).execute(&self.pool).await?;
        self.cache.forget(id);
        Ok(())
    }

    /// The PNG of avatar `key`.
    pub async fn avatar(&self, key: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
        let row: Option<(Vec<u8>,)> = sqlx::query_as("SELECT png FROM avatars WHERE id = $1").bind(key).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| r.0))
    }
}
