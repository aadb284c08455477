//! The database: SQLite by default, PostgreSQL when `DATABASE_URL` says so, through
//! sqlx's `Any` driver so one set of queries serves both. Migrations run at start-up.

use crate::server::error::StartupError;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Describe, Either, Execute, Executor};
use sqlx_core::any::{AnyArgumentBuffer, AnyValueKind};
use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::sync::{mpsc, oneshot};

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

    /// Whether the pool pings a connection each time it hands it out. A PostgreSQL
    /// connection can die under us (a server restart, a dropped network), and the ping
    /// finds that before a query does. A SQLite connection is a file this process holds;
    /// its ping is only a round trip to sqlx's worker thread, one per statement.
    pub fn ping_before_use(self) -> bool {
        self == Backend::Postgres
    }
}

/// The app's database: an executor like sqlx's pool (`query.execute(&db)`), which it
/// wraps. On SQLite it keeps the connections it has used in an idle list of its own and
/// hands them out again as they are: sqlx's pool pings every connection it takes back
/// (one more round trip to the connection's worker thread after every statement), and a
/// SQLite connection has nothing to check — its worker runs commands in order, so even a
/// statement abandoned half-way is finished before the next one starts. On PostgreSQL it
/// is sqlx's pool unchanged: those connections can die, and the pings find that out.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    kept: Option<Arc<Kept>>,
    /// SQLite's group commit ([`write_loop`]): where single writes go.
    writes: Option<mpsc::Sender<WriteJob>>,
    /// Writes through the group commit, and the commits they took.
    write_stats: Arc<WriteStats>,
}

/// What the group commit did: `writes` answered, in `commits` transactions (a lone write
/// is its own). Their ratio is the batching.
#[derive(Debug, Default)]
struct WriteStats {
    writes: std::sync::atomic::AtomicU64,
    commits: std::sync::atomic::AtomicU64,
}

/// SQLite's connections, out of sqlx's pool for good and lent by [`Db::acquire`].
#[derive(Debug)]
struct Kept {
    idle: Mutex<Vec<PoolConnection<Any>>>,
    /// One permit per connection: lent out or idle, never more than the pool's size.
    permits: Arc<Semaphore>,
}

/// A connection lent by [`Db::acquire`]; dropped, it goes back where it came from.
pub struct DbConnection {
    conn: Option<PoolConnection<Any>>,
    kept: Option<(Arc<Kept>, OwnedSemaphorePermit)>,
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

impl Drop for DbConnection {
    fn drop(&mut self) {
        if let (Some(conn), Some((kept, _permit))) = (self.conn.take(), self.kept.as_ref()) {
            // Back on the list before the permit (dropped after this) lets a waiter in;
            // after `close`, back to sqlx's pool, which closes it.
            if !kept.permits.is_closed() {
                kept.idle.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
            }
        }
    }
}

impl Db {
    /// `pool` on `backend`, with `size` connections at most.
    fn new(pool: AnyPool, backend: Backend, size: u32) -> Self {
        let kept = (backend == Backend::Sqlite).then(|| {
            Arc::new(Kept { idle: Mutex::default(), permits: Arc::new(Semaphore::new(usize::try_from(size).unwrap_or(1).max(1))) })
        });
        let mut db = Db { pool, backend, kept, writes: None, write_stats: Arc::default() };
        if backend == Backend::Sqlite {
            let (tx, rx) = mpsc::channel(QUEUED_WRITES);
            tokio::spawn(write_loop(db.clone(), rx));
            db.writes = Some(tx);
        }
        db
    }

    /// The group commit's counts (zero on PostgreSQL).
    pub fn write_stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.write_stats.writes.load(Relaxed), self.write_stats.commits.load(Relaxed))
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// sqlx's pool itself: for transactions, which only the PostgreSQL-only parts (the
    /// fleet's shared token and pool of codes) use.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes every connection, waiting for those in use.
    pub async fn close(&self) {
        if let Some(kept) = &self.kept {
            kept.permits.close();
            kept.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
        self.pool.close().await;
    }

    /// A connection of its own, for several statements in a row.
    pub async fn acquire(&self) -> Result<DbConnection, sqlx::Error> {
        let Some(kept) = &self.kept else {
            return Ok(DbConnection { conn: Some(self.pool.acquire().await?), kept: None });
        };
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, kept.permits.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = kept.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.pool.acquire().await?,
        };
        Ok(DbConnection { conn: Some(conn), kept: Some((kept.clone(), permit)) })
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
            let mut query = query;
            if let Some(job) = db.group_write(&mut query)? {
                return job.await;
            }
            let mut conn = db.acquire().await?;
            conn.fetch_many(query).try_collect::<Vec<_>>().await
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
            let mut query = query;
            if let Some(job) = db.group_write(&mut query)? {
                return Ok(job.await?.into_iter().find_map(|r| r.right()));
            }
            db.acquire().await?.fetch_optional(query).await
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

type Results = Vec<Either<AnyQueryResult, AnyRow>>;

/// One write for [`write_loop`]: the statement, its arguments (owned) and who waits.
struct WriteJob {
    sql: String,
    args: Option<AnyArguments<'static>>,
    reply: oneshot::Sender<Result<Results, sqlx::Error>>,
}

/// Writes committed together at most (a batch is what queued while the last one ran).
const MAX_BATCH: usize = 64;

/// Writes queued at most; more wait to be queued ([`ACQUIRE_TIMEOUT`] at most).
const QUEUED_WRITES: usize = 4096;

impl Db {
    /// On SQLite, a lone INSERT, UPDATE or DELETE goes to [`write_loop`]: the answer once
    /// it is committed. None: run it here (a read, PostgreSQL, or arguments it cannot own).
    fn group_write<'q, E: Execute<'q, Any>>(
        &self,
        query: &mut E,
    ) -> Result<Option<impl Future<Output = Result<Results, sqlx::Error>> + use<'q, E>>, sqlx::Error> {
        let Some(writes) = &self.writes else { return Ok(None) };
        let head = query.sql().trim_start().get(..6).unwrap_or("");
        if !["INSERT", "UPDATE", "DELETE"].iter().any(|k| head.eq_ignore_ascii_case(k)) {
            return Ok(None);
        }
        let args = match query.take_arguments().map_err(sqlx::Error::Encode)? {
            Some(a) => match owned(a) {
                Some(a) => Some(a),
                // Taken, and not ownable: refuse rather than run it without them.
                None => return Err(sqlx::Error::Protocol("a write argument of a kind the group commit cannot keep".into())),
            },
            None => None,
        };
        let (reply, answer) = oneshot::channel();
        let (writes, job) = (writes.clone(), WriteJob { sql: query.sql().to_string(), args, reply });
        Ok(Some(async move {
            // A full queue waits like a connection would, and fails the same way: before
            // the write has run.
            match tokio::time::timeout(ACQUIRE_TIMEOUT, writes.send(job)).await {
                Ok(Ok(())) => answer.await.map_err(|_| sqlx::Error::PoolClosed)?,
                Ok(Err(_)) => Err(sqlx::Error::PoolClosed),
                Err(_) => Err(sqlx::Error::PoolTimedOut),
            }
        }))
    }

    /// One commit of `writes` writes.
    fn counted(&self, writes: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.write_stats.writes.fetch_add(writes, Relaxed);
        self.write_stats.commits.fetch_add(1, Relaxed);
    }
}

/// The arguments with their text and bytes copied, to outlive the request.
fn owned(args: AnyArguments<'_>) -> Option<AnyArguments<'static>> {
    let mut values = Vec::with_capacity(args.values.0.len());
    for v in args.values.0 {
        values.push(match v {
            AnyValueKind::Null(k) => AnyValueKind::Null(k),
            AnyValueKind::Bool(b) => AnyValueKind::Bool(b),
            AnyValueKind::SmallInt(i) => AnyValueKind::SmallInt(i),
            AnyValueKind::Integer(i) => AnyValueKind::Integer(i),
            AnyValueKind::BigInt(i) => AnyValueKind::BigInt(i),
            AnyValueKind::Real(f) => AnyValueKind::Real(f),
            AnyValueKind::Double(f) => AnyValueKind::Double(f),
            AnyValueKind::Text(t) => AnyValueKind::Text(Cow::Owned(t.into_owned())),
            AnyValueKind::Blob(b) => AnyValueKind::Blob(Cow::Owned(b.into_owned())),
            _ => return None,
        });
    }
    Some(AnyArguments { values: AnyArgumentBuffer(values) })
}

/// SQLite's group commit (issue 31). Every lone write of the app comes here, and the
/// writes that queued while the last batch ran are committed in one transaction: on
/// SQLite a commit appends every page it touched to the WAL (a table page and one per
/// index) and the checkpoint copies them back, so a page many writes touch is written
/// once a batch instead of once a write. A write is answered only after its batch
/// commits (nothing answered is lost on restart). A statement that fails fails alone:
/// SQLite undoes only that statement, what ran before it is committed and answered, and
/// the rest of the batch goes on in a new transaction. A lone write runs as before.
async fn write_loop(db: Db, mut jobs: mpsc::Receiver<WriteJob>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut conn = match db.acquire().await {
            Ok(c) => c,
            Err(e) => {
                for job in batch {
                    let _ = job.reply.send(Err(sqlx::Error::Protocol(format!("no connection for the write: {e}"))));
                }
                continue;
            }
        };
        if batch.len() == 1 {
            let mut job = batch.remove(0);
            let result = run(&mut conn, &mut job).await;
            if result.is_ok() {
                db.counted(1);
            }
            let _ = job.reply.send(result);
            continue;
        }
        let mut done: Vec<(WriteJob, Results)> = Vec::new();
        let mut open = false;
        for mut job in batch {
            if !open {
                if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
                    let _ = job.reply.send(Err(e));
                    continue;
                }
                open = true;
            }
            match run(&mut conn, &mut job).await {
                Ok(rows) => done.push((job, rows)),
                Err(e) => {
                    settle(&db, &mut conn, std::mem::take(&mut done)).await;
                    open = false;
                    let _ = job.reply.send(Err(e));
                }
            }
        }
        if open {
            settle(&db, &mut conn, done).await;
        }
    }
}

async fn run(conn: &mut DbConnection, job: &mut WriteJob) -> Result<Results, sqlx::Error> {
    let query = match job.args.take() {
        Some(args) => sqlx::query_with(&job.sql, args),
        None => sqlx::query(&job.sql),
    };
    conn.fetch_many(query).try_collect().await
}

/// Commits the open transaction and answers its writes: their results, or the commit's
/// failure (then rolled back).
async fn settle(db: &Db, conn: &mut DbConnection, done: Vec<(WriteJob, Results)>) {
    match sqlx::query("COMMIT").execute(&mut **conn).await {
        Ok(_) => {
            db.counted(done.len() as u64);
            for (job, rows) in done {
                let _ = job.reply.send(Ok(rows));
            }
        }
        Err(e) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut **conn).await;
            for (job, _) in done {
                let _ = job.reply.send(Err(sqlx::Error::Protocol(format!("the write's transaction did not commit: {e}"))));
            }
        }
    }
}

/// How long a statement waits for a connection before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The default database URL.
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
    let url = match backend {
        Backend::Sqlite => sqlite_url(url)?,
        Backend::Postgres => url.to_string(),
    };
    let size = max_connections.unwrap_or(backend.default_connections());
    let pool = AnyPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(backend.ping_before_use())
        .after_connect(move |conn, _| {
            let instance = instance.clone();
            Box::pin(async move {
                if backend == Backend::Postgres {
                    sqlx::query("SELECT set_config('scanlogin.instance', $1, false)").bind(instance).fetch_optional(&mut *conn).await?;
                }
                if backend == Backend::Sqlite {
                    // WAL lets readers run beside the writer; busy_timeout queues writers.
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA busy_timeout = 5000",
                        "PRAGMA foreign_keys = ON",
                        "PRAGMA synchronous = NORMAL",
                    ] {
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
    Ok(Db::new(pool, backend, size))
}

/// Makes sure a file database can be created (its directory exists, `mode=rwc`).
fn sqlite_url(url: &str) -> Result<String, StartupError> {
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
    Ok(format!("sqlite://{path}?{query}"))
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
        assert!(db.pool().size() <= 2, "sqlx opened {} connections", db.pool().size());
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

    #[tokio::test]
    async fn a_statement_abandoned_half_way_leaves_its_connection_usable() {
        let (db, _dir) = sqlite(1).await;
        let slow = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000000) SELECT COUNT(*) FROM n";
        let abandoned = tokio::time::timeout(Duration::from_millis(20), sqlx::query_scalar::<_, i64>(slow).fetch_one(&db)).await;
        assert!(abandoned.is_err(), "the slow statement was still running when abandoned");
        let rows: Vec<i64> = sqlx::query_scalar("SELECT 7 UNION ALL SELECT 8").fetch_all(&db).await.unwrap();
        assert_eq!(rows, vec![7, 8], "the next statement on the same connection gets its own rows");
    }
}
