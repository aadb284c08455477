//! The database: SQLite by default, PostgreSQL when `DATABASE_URL` says so, through
//! sqlx's `Any` driver so one set of queries serves both. Migrations run at start-up.

use crate::server::error::StartupError;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use sqlx::any::{AnyPoolOptions, AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Describe, Either, Execute, Executor};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

mod batch;
mod inline;

/// Which database is behind the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (a file).
    Sqlite,
    Postgres,
}

impl Backend {
    /// Pool size when not configured. For SQLite, 2, 4 and 8 connections gave the same
    /// login throughput within the bench's noise and 1 a little less (docs/benchmarks.md):
    /// it writes one at a time, and reads beside the writer (WAL) need only a few.
    pub fn default_connections(self) -> u32 {
        match self {
            Backend::Sqlite => 8,
            Backend::Postgres => 16,
        }
    }

    /// How long a connection may sit idle before it is checked (a round trip) before
    /// being lent again. A PostgreSQL connection can die under us (a server restart, a
    /// dropped network), and the check finds that before a statement does; one used a
    /// moment ago is known to be alive. A SQLite connection is a file this process holds:
    /// never checked.
    pub fn check_idle_after(self) -> Option<Duration> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some(Duration::from_secs(1)),
        }
    }
}

/// The app's database: an executor like sqlx's pool (`query.execute(&db)`), which it
/// wraps. On SQLite the statements sent to it run on this process's own threads
/// ([`inline`]). The sqlx connections it lends (every statement on PostgreSQL, explicit
/// transactions on both) it keeps in an idle list of its own and hands out again as they
/// are. sqlx's pool would ping each connection as it takes it back and again as it lends
/// it: two more round trips a statement, with a task spawned for one of them. Neither is
/// needed to stay in step: a connection finishes whatever an abandoned statement or
/// transaction left on it (the rows, a queued ROLLBACK) before it runs the next one. What
/// the pings did find — a connection that died — is found here by a check before lending
/// one that sat idle ([`Backend::check_idle_after`]), and by dropping one whose statement
/// failed on the connection itself rather than in the database. Every connection goes
/// back to sqlx's pool after [`BACK_TO_SQLX_AFTER`], where its lifetime is kept (a
/// connection past sqlx's 30 minutes is closed and a new one opened): a server that
/// changed behind the same address, a failover say, is reached again.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    kept: Arc<Kept>,
    /// SQLite run by this process's own threads ([`inline`]): reads on the calling
    /// thread, writes through the group commit.
    sqlite: Option<Arc<inline::Sqlite>>,
    /// PostgreSQL's lone writes, sent together ([`batch`]).
    batches: Arc<batch::Batches>,
}

/// The connections, out of sqlx's pool and lent by [`Db::acquire`].
#[derive(Debug)]
struct Kept {
    idle: Mutex<Vec<Idle>>,
    /// One permit per connection: lent out or idle, never more than the pool's size.
    permits: Arc<Semaphore>,
    /// A connection idle this long is checked before it is lent.
    check_after: Option<Duration>,
}

/// An idle connection.
#[derive(Debug)]
struct Idle {
    conn: PoolConnection<Any>,
    /// Idle since.
    since: Instant,
    /// Taken out of sqlx's pool at.
    taken: Instant,
}

/// How long a connection stays out of sqlx's pool.
const BACK_TO_SQLX_AFTER: Duration = Duration::from_secs(600);

/// A connection lent by [`Db::acquire`]; dropped, it goes back where it came from.
pub struct DbConnection {
    conn: Option<PoolConnection<Any>>,
    taken: Instant,
    kept: Arc<Kept>,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for DbConnection {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        self.conn.as_ref().expect("a lent connection until dropped")
    }
}

impl std::ops::DerefMut for DbConnection {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn.as_mut().expect("a lent connection until dropped")
    }
}

impl DbConnection {
    /// Closes the connection instead of putting it back on the idle list when `e`, its
    /// statement's error, says the connection is gone: it broke (closed, out of step), or
    /// the server ended it (SQLSTATE class 08, or 57P: shut down, terminated by an
    /// administrator), or it reaches a server that can no longer write (25006: after a
    /// failover, a standby). sqlx's pool opens another in its place.
    fn close_if_gone(&mut self, e: &sqlx::Error) {
        let code = e.as_database_error().and_then(|d| d.code());
        let ended = code.is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "25006");
        let broken = matches!(e, sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed);
        if (ended || broken)
            && let Some(mut conn) = self.conn.take()
        {
            conn.close_on_drop();
        }
    }
}

impl Drop for DbConnection {
    fn drop(&mut self) {
        // Back on the list before the permit (dropped after this) lets a waiter in;
        // after `close`, or when its time out of it is up, back to sqlx's pool.
        if let Some(conn) = self.conn.take()
            && !self.kept.permits.is_closed()
            && self.taken.elapsed() < BACK_TO_SQLX_AFTER
        {
            let idle = Idle { conn, since: Instant::now(), taken: self.taken };
            self.kept.idle.lock().unwrap_or_else(|e| e.into_inner()).push(idle);
        }
    }
}

impl Db {
    /// `pool` on `backend`, with `size` connections at most; on SQLite, the file at
    /// `path` run by [`inline`] as well.
    fn new(pool: AnyPool, backend: Backend, size: u32, path: Option<&std::path::Path>) -> Result<Self, sqlx::Error> {
        let kept = Arc::new(Kept {
            idle: Mutex::default(),
            permits: Arc::new(Semaphore::new(usize::try_from(size).unwrap_or(1).max(1))),
            check_after: backend.check_idle_after(),
        });
        let sqlite = match path {
            Some(path) => Some(inline::Sqlite::open(path)?),
            None => None,
        };
        Ok(Db { pool, backend, kept, sqlite, batches: Arc::default() })
    }

    /// The lone writes answered, and the commits (SQLite's group commit) or round trips
    /// (PostgreSQL's batches) they took.
    pub fn write_stats(&self) -> (u64, u64) {
        self.sqlite.as_ref().map_or_else(|| self.batches.stats(), |s| s.write_stats())
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection, waiting for those in use.
    pub async fn close(&self) {
        if let Some(sqlite) = &self.sqlite {
            sqlite.close();
        }
        self.kept.permits.close();
        self.kept.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.pool.close().await;
    }

    /// A connection of its own, for several statements in a row (a transaction:
    /// `sqlx::Connection::begin(&mut *conn)`).
    pub async fn acquire(&self) -> Result<DbConnection, sqlx::Error> {
        let kept = &self.kept;
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, kept.permits.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let (conn, taken) = loop {
            let idle = kept.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some(Idle { mut conn, since, taken }) = idle else {
                break (self.pool.acquire().await?, Instant::now());
            };
            if kept.check_after.is_none_or(|after| since.elapsed() < after) {
                break (conn, taken);
            }
            // Sat idle: checked, and if dead handed back to sqlx's pool, which closes it.
            if sqlx::Connection::ping(&mut *conn).await.is_ok() {
                break (conn, taken);
            }
        };
        Ok(DbConnection { conn: Some(conn), taken, kept: kept.clone(), _permit: permit })
    }

    /// `query` on a connection of its own (PostgreSQL), its rows collected.
    async fn fetch_alone<'q>(&self, query: impl Execute<'q, Any> + 'q) -> Result<Vec<Either<AnyQueryResult, AnyRow>>, sqlx::Error> {
        let mut conn = self.acquire().await?;
        let rows = conn.fetch_many(query).try_collect::<Vec<_>>().await;
        if let Err(e) = &rows {
            conn.close_if_gone(e);
        }
        rows
    }
}

impl<'p> Executor<'p> for &'_ Db {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Any>,
    {
        // The app's results are a few rows: collected on the connection, then streamed.
        let db = self.clone();
        stream::once(async move {
            if let Some(sqlite) = &db.sqlite {
                return sqlite.run(query).await;
            }
            if batch::is_lone_write(query.sql()) {
                match batch::rendered(query)? {
                    Ok(sql) => return Ok(vec![Either::Left(db.batches.write(&db, sql).await?)]),
                    Err(query) => return db.fetch_alone(query).await,
                }
            }
            db.fetch_alone(query).await
        })
        .map_ok(|rows| stream::iter(rows.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Any>,
    {
        let db = self.clone();
        Box::pin(async move {
            if let Some(sqlite) = &db.sqlite {
                return Ok(sqlite.run(query).await?.into_iter().find_map(|r| r.right()));
            }
            let mut conn = db.acquire().await?;
            let row = conn.fetch_optional(query).await;
            if let Err(e) = &row {
                conn.close_if_gone(e);
            }
            row
        })
    }

    fn prepare_with<'e, 'q: 'e>(self, sql: &'q str, parameters: &'e [AnyTypeInfo]) -> BoxFuture<'e, Result<AnyStatement<'q>, sqlx::Error>> {
        let db = self.clone();
        Box::pin(async move { db.acquire().await?.prepare_with(sql, parameters).await })
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Any>, sqlx::Error>> {
        let db = self.clone();
        Box::pin(async move { db.acquire().await?.describe(sql).await })
    }
}

/// How long a statement waits for a connection before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The default database URL.
/// Every SQLite connection's settings, sqlx's and [`inline`]'s alike. WAL lets readers
/// run beside the writer; busy_timeout queues writers.
const SQLITE_SETTINGS: [&str; 4] =
    ["PRAGMA journal_mode = WAL", "PRAGMA busy_timeout = 5000", "PRAGMA foreign_keys = ON", "PRAGMA synchronous = NORMAL"];

pub const DEFAULT_URL: &str = "sqlite://data/scanlogin.db";

/// Connects and runs the migrations. On PostgreSQL every connection names its instance
/// (`scanlogin.instance`), which the session trigger puts in its notifications.
/// `max_connections` unset: the backend's default (below).
pub async fn connect(url: &str, instance: &str, max_connections: Option<u32>) -> Result<Db, StartupError> {
    let instance = instance.to_string();
    sqlx::any::install_default_drivers();
    let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Backend::Postgres
    } else if url.starts_with("sqlite:") {
        Backend::Sqlite
    } else {
        return Err(StartupError::Config("DATABASE_URL must start with sqlite: or postgres:".into()));
    };
    let (url, path) = match backend {
        Backend::Sqlite => sqlite_url(url).map(|(url, path)| (url, Some(path)))?,
        Backend::Postgres => (url.to_string(), None),
    };
    let size = max_connections.unwrap_or(backend.default_connections());
    let pool = AnyPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // The connections live in `Db`'s own list (checked there); sqlx's pool only opens
        // them, and closes those given back.
        .test_before_acquire(false)
        .after_connect(move |conn, _| {
            let instance = instance.clone();
            Box::pin(async move {
                if backend == Backend::Postgres {
                    sqlx::query("SELECT set_config('scanlogin.instance', $1, false)").bind(instance).fetch_optional(&mut *conn).await?;
                }
                if backend == Backend::Sqlite {
                    for pragma in SQLITE_SETTINGS {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                }
                Ok(())
            })
        })
        .connect(&url)
        .await?;
    let migrated = match backend {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await,
        Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await,
    };
    migrated?;
    Ok(Db::new(pool, backend, size, path.as_deref())?)
}

/// Makes sure a file database can be created (its directory exists, `mode=rwc`): the URL
/// for sqlx, and the file's path.
fn sqlite_url(url: &str) -> Result<(String, PathBuf), StartupError> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" {
        return Err(StartupError::Config("an in-memory SQLite database would lose everything on restart; use a file".into()));
    }
    if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StartupError::DatabaseDir { path: dir.display().to_string(), source })?;
    }
    let query = if query.contains("mode=") {
        query.to_string()
    } else if query.is_empty() {
        "mode=rwc".into()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok((format!("sqlite://{path}?{query}"), PathBuf::from(path)))
}

#[cfg(test)]
#[cfg(feature = "test-support")]
mod tests {
    use super::*;

    async fn sqlite(size: u32) -> (Db, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let db = connect(&format!("sqlite://{}/t.db", dir.path().display()), "test", Some(size)).await.unwrap();
        (db, dir)
    }

    #[tokio::test]
    async fn sqlite_connections_are_lent_again_and_never_more_than_the_pool() {
        let (db, _dir) = sqlite(2).await;
        // A temporary table lives on one connection only: finding it again means the
        // very connection came back.
        sqlx::query("CREATE TEMP TABLE mine (x INTEGER)").execute(&mut *db.acquire().await.unwrap()).await.unwrap();
        let again = sqlx::query("SELECT COUNT(*) FROM mine").execute(&mut *db.acquire().await.unwrap()).await;
        assert!(again.is_ok(), "the one idle connection is lent again: {again:?}");

        let (a, b) = (db.acquire().await.unwrap(), db.acquire().await.unwrap());
        let third = tokio::time::timeout(Duration::from_millis(200), db.acquire()).await;
        assert!(third.is_err(), "a third connection while two are lent out");
        drop(a);
        let third = tokio::time::timeout(Duration::from_secs(5), db.acquire()).await;
        assert!(matches!(third, Ok(Ok(_))), "one given back, the next waiter gets it");
        drop((b, third));

        // Many statements at once through the executor, all answered.
        let sums = futures_util::future::join_all((0..50_i64).map(|i| {
            let db = db.clone();
            async move { sqlx::query_scalar::<_, i64>("SELECT $1 + 1").bind(i).fetch_one(&db).await.unwrap() }
        }))
        .await;
        assert_eq!(sums, (1..=50).collect::<Vec<i64>>());
        assert!(db.pool.size() <= 2, "sqlx opened {} connections", db.pool.size());
        db.close().await;
        assert!(db.acquire().await.is_err(), "closed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_commit_together_and_a_failing_one_fails_alone() {
        let (db, dir) = sqlite(4).await;
        sqlx::query("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)").execute(&db).await.unwrap();
        // 400 writes at once; every tenth repeats a key another write also inserts.
        let results = futures_util::future::join_all((0..400_i64).map(|i| {
            let db = db.clone();
            let key = if i % 10 == 9 { i - 1 } else { i };
            async move { sqlx::query("INSERT INTO t (k, v) VALUES ($1, $2)").bind(key).bind(format!("v{i}")).execute(&db).await }
        }))
        .await;
        let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(failed.len(), 40, "exactly the repeated keys fail");
        assert!(
            failed.iter().all(|e| e.as_database_error().is_some_and(|d| d.is_unique_violation())),
            "each with its own error, as if it ran alone: {failed:?}"
        );
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&db).await.unwrap();
        assert_eq!(n, 360, "every other write committed, those after a failure too");
        let (writes, commits) = db.write_stats();
        assert!(writes >= 360 && commits < writes, "writes were committed together: {writes} writes in {commits} commits");
        // What was answered is on disk: a new pool on the same file reads it.
        db.close().await;
        let again = connect(&format!("sqlite://{}/t.db", dir.path().display()), "test", Some(1)).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&again).await.unwrap();
        assert_eq!(n, 360);
        // RETURNING through the group commit.
        let k: i64 = sqlx::query_scalar("INSERT INTO t (k, v) VALUES (1000, 'x') RETURNING k").fetch_one(&again).await.unwrap();
        assert_eq!(k, 1000);
    }

    /// A read runs on the calling thread only while it is short: a long one moves to the
    /// blocking pool, and the runtime's one thread goes on meanwhile.
    #[tokio::test(flavor = "current_thread")]
    async fn a_long_read_does_not_hold_the_runtime_and_stops_when_abandoned() {
        let (db, _dir) = sqlite(1).await;
        let slow = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000000) SELECT COUNT(*) FROM n";
        let order = Mutex::new(Vec::new());
        let read = async {
            let n: i64 = sqlx::query_scalar(slow).fetch_one(&db).await.unwrap();
            order.lock().unwrap().push("read");
            n
        };
        let tick = async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            order.lock().unwrap().push("tick");
        };
        let (n, ()) = tokio::join!(read, tick);
        assert_eq!(n, 20_000_000);
        assert_eq!(*order.lock().unwrap(), ["tick", "read"], "the other task ran while the long read did");

        // Abandoned half-way, it is interrupted; the next statements get their own rows.
        let abandoned = tokio::time::timeout(Duration::from_millis(20), sqlx::query_scalar::<_, i64>(slow).fetch_one(&db)).await;
        assert!(abandoned.is_err(), "the slow statement was still running when abandoned");
        let rows: Vec<i64> = sqlx::query_scalar("SELECT 7 UNION ALL SELECT 8").fetch_all(&db).await.unwrap();
        assert_eq!(rows, vec![7, 8], "the next statement gets its own rows");
        let both =
            futures_util::future::join_all((0..20_i64).map(|i| sqlx::query_scalar::<_, i64>("SELECT $1 * 2").bind(i).fetch_one(&db))).await;
        assert!(both.iter().enumerate().all(|(i, r)| r.as_ref().is_ok_and(|v| *v == 2 * i as i64)), "{both:?}");
    }

    /// What the app reads and writes comes back as sqlx's own SQLite driver gives it.
    #[tokio::test]
    async fn rows_and_errors_read_as_through_sqlx() {
        let (db, _dir) = sqlite(1).await;
        sqlx::query("CREATE TABLE v (id INTEGER PRIMARY KEY, n BIGINT, t TEXT, b BLOB, r REAL, o TEXT, p INTEGER REFERENCES v(id))")
            .execute(&db)
            .await
            .unwrap();
        let done = sqlx::query("INSERT INTO v (id, n, t, b, r, o) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(1_i64)
            .bind(-5_i64)
            .bind("文字")
            .bind(vec![0_u8, 255])
            .bind(1.5_f64)
            .bind(None::<String>)
            .execute(&db)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1);
        // `$2` twice is one argument, as on sqlx's driver.
        let same: i64 = sqlx::query_scalar("SELECT $2 + $2 - $1").bind(1_i64).bind(10_i64).fetch_one(&db).await.unwrap();
        assert_eq!(same, 19);
        let row: (i64, String, Vec<u8>, f64, Option<String>, Option<i64>) =
            sqlx::query_as("SELECT n, t, b, r, o, p FROM v WHERE id = $1").bind(1_i64).fetch_one(&db).await.unwrap();
        assert_eq!(row, (-5, "文字".to_string(), vec![0, 255], 1.5, None, None));
        let by_name = sqlx::query("SELECT t AS label FROM v").fetch_one(&db).await.unwrap();
        assert_eq!(sqlx::Row::get::<String, _>(&by_name, "label"), "文字");
        assert!(sqlx::query_as::<_, (i64,)>("SELECT n FROM v WHERE id = 2").fetch_optional(&db).await.unwrap().is_none());
        // An UPDATE counts its rows; a constraint names its kind.
        let updated = sqlx::query("UPDATE v SET n = n + 1 WHERE id >= $1").bind(0_i64).execute(&db).await.unwrap();
        assert_eq!(updated.rows_affected(), 1);
        let dup = sqlx::query("INSERT INTO v (id) VALUES (1)").execute(&db).await.unwrap_err();
        assert!(dup.as_database_error().is_some_and(|d| d.is_unique_violation()), "{dup:?}");
        let orphan = sqlx::query("INSERT INTO v (id, p) VALUES (3, 99)").execute(&db).await.unwrap_err();
        assert!(orphan.as_database_error().is_some_and(|d| d.is_foreign_key_violation()), "foreign keys are on: {orphan:?}");
        let missing = sqlx::query("SELECT nope FROM v").execute(&db).await.unwrap_err();
        assert!(missing.to_string().contains("no such column"), "{missing}");
        // Nothing of the failures was written.
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM v").fetch_one(&db).await.unwrap();
        assert_eq!(n, 1);
    }
}
