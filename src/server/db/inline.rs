//! SQLite run by this process's own threads (issue 31), under the app's `Db` executor.
//!
//! Through sqlx's SQLite driver every statement is a hand-off: the task sends it to the
//! connection's worker thread and sleeps until the answer comes back, two context
//! switches and a wake-up a statement, ~40 a login. Here:
//! - a **read** runs on the calling thread, on a connection of its own from a small idle
//!   list: a short read is a few microseconds of SQLite's own work. A read still running
//!   after [`INLINE_READ`] is interrupted and run again on tokio's blocking pool, so a
//!   long one (a console listing over a large table) never holds a runtime thread; it is
//!   a read, so running it again changes nothing. Abandoned there, it is interrupted.
//! - a **write** (a lone INSERT, UPDATE or DELETE, or any statement SQLite does not call
//!   read-only) goes to one writer thread, which commits what queued while its last
//!   batch ran in one transaction (group commit, below).
//!
//! Rows come back as sqlx's `AnyRow`, with what sqlx's driver gives them (a value's kind
//! is its storage class), so every query of the app reads them as before. Explicit
//! transactions (`Db::acquire`) and the migrations stay on sqlx's connections; SQLite
//! orders them with these on the same file (WAL, `busy_timeout`).

use super::{ACQUIRE_TIMEOUT, SQLITE_SETTINGS};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use sqlx::any::{AnyArguments, AnyQueryResult, AnyRow, AnyTypeInfo, AnyTypeInfoKind, AnyValue};
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::{Any, Either, Execute};
use sqlx_core::any::{AnyColumn, AnyValueKind};
use sqlx_core::ext::ustr::UStr;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// What a statement answers: its rows, then its result (as sqlx's executors stream them).
pub(super) type Results = Vec<Either<AnyQueryResult, AnyRow>>;

/// How long a read may hold the calling (runtime) thread before it moves to the blocking
/// pool. A login's reads take microseconds.
const INLINE_READ: Duration = Duration::from_millis(2);

/// SQLite's virtual machine instructions between two looks at the clock.
const PROGRESS_OPS: i32 = 1000;

/// Writes committed together at most (a batch is what queued while the last one ran).
const MAX_BATCH: usize = 64;

/// A busy writer (its last commit ended less than [`BUSY`] before the next write came)
/// waits this long for more writes before it begins a batch. Running here a write is a
/// few microseconds and its commit most of its cost, so without the wait the writer
/// keeps pace with a burst and commits almost every write alone (10,000 writes in ~5,800
/// commits in a burst of 1000 logins, against ~160 with it). An idle writer does not wait.
const LINGER: Duration = Duration::from_millis(2);

/// See [`LINGER`].
const BUSY: Duration = Duration::from_millis(5);

/// Writes queued at most; more wait to be queued ([`ACQUIRE_TIMEOUT`] at most).
const QUEUED_WRITES: usize = 4096;

/// Idle read connections kept; more are closed when given back.
const IDLE_READERS: usize = 16;

/// Prepared statements each connection keeps (the app has fewer distinct ones).
const STATEMENT_CACHE: usize = 256;

/// The database file, its readers and its writer thread.
pub(super) struct Sqlite {
    path: PathBuf,
    readers: Mutex<Vec<Reader>>,
    writes: mpsc::Sender<WriteJob>,
    stats: Arc<WriteStats>,
    closed: AtomicBool,
}

/// What the group commit did: `writes` answered, in `commits` transactions (a lone write
/// is its own). Their ratio is the batching.
#[derive(Debug, Default)]
struct WriteStats {
    writes: AtomicU64,
    commits: AtomicU64,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite").field("path", &self.path).finish_non_exhaustive()
    }
}

/// A read connection and the deadline its progress handler enforces.
struct Reader {
    conn: Connection,
    /// Nanoseconds after [`epoch`] past which the running statement is interrupted;
    /// `u64::MAX`: none.
    deadline: Arc<AtomicU64>,
}

/// One write for the writer thread: the statement, its arguments and who waits.
struct WriteJob {
    sql: String,
    args: Vec<Value>,
    reply: oneshot::Sender<Result<Results, sqlx::Error>>,
}

/// The instant deadlines count from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn nanos_since_epoch(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX - 1)
}

/// A connection with the app's settings, those of sqlx's connections.
fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    for pragma in SQLITE_SETTINGS {
        conn.execute_batch(pragma)?;
    }
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

impl Sqlite {
    /// Opens the writer (and its thread) on the file at `path`, which sqlx has created
    /// and migrated.
    pub(super) fn open(path: &Path) -> Result<Arc<Self>, sqlx::Error> {
        let writer = open(path).map_err(error)?;
        let (writes, jobs) = mpsc::channel(QUEUED_WRITES);
        let stats = Arc::<WriteStats>::default();
        let counts = stats.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(writer, jobs, counts))
            .map_err(sqlx::Error::Io)?;
        Ok(Arc::new(Sqlite { path: path.to_path_buf(), readers: Mutex::default(), writes, stats, closed: AtomicBool::new(false) }))
    }

    /// The group commit's writes answered, and the commits they took.
    pub(super) fn write_stats(&self) -> (u64, u64) {
        (self.stats.writes.load(Ordering::Relaxed), self.stats.commits.load(Ordering::Relaxed))
    }

    /// No statement runs after this; the idle readers are closed (the writer thread ends
    /// with the last handle on its queue).
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.readers.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Runs `query`: a write through the writer thread, a read here.
    pub(super) async fn run<'q>(&self, mut query: impl Execute<'q, Any>) -> Result<Results, sqlx::Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(sqlx::Error::PoolClosed);
        }
        let sql = query.sql();
        let args = match query.take_arguments().map_err(sqlx::Error::Encode)? {
            Some(a) => values(a)?,
            None => Vec::new(),
        };
        let head = sql.trim_start().get(..6).unwrap_or("");
        if ["INSERT", "UPDATE", "DELETE"].iter().any(|k| head.eq_ignore_ascii_case(k)) {
            return self.write(sql, args).await;
        }
        let reader = self.reader()?;
        reader.deadline.store(nanos_since_epoch(Instant::now() + INLINE_READ), Ordering::Relaxed);
        let inline = read(&reader.conn, sql, &args);
        match inline {
            Ok(Read::Rows(rows)) => {
                self.give_back(reader);
                Ok(rows)
            }
            Ok(Read::NotReadOnly) => {
                self.give_back(reader);
                self.write(sql, args).await
            }
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::OperationInterrupted) => self.read_blocking(reader, sql, args).await,
            Err(e) => {
                self.give_back(reader);
                Err(error(e))
            }
        }
    }

    /// A read that outgrew [`INLINE_READ`], run again on the blocking pool. Abandoned,
    /// it is interrupted, and its connection comes back when it has stopped.
    async fn read_blocking(&self, reader: Reader, sql: &str, args: Vec<Value>) -> Result<Results, sqlx::Error> {
        struct InterruptOnDrop(Option<rusqlite::InterruptHandle>);
        impl Drop for InterruptOnDrop {
            fn drop(&mut self) {
                if let Some(handle) = self.0.take() {
                    handle.interrupt();
                }
            }
        }
        reader.deadline.store(u64::MAX, Ordering::Relaxed);
        let mut guard = InterruptOnDrop(Some(reader.conn.get_interrupt_handle()));
        let sql = sql.to_string();
        let done = tokio::task::spawn_blocking(move || {
            let result = read(&reader.conn, &sql, &args);
            (reader, result)
        })
        .await;
        guard.0 = None;
        let (reader, result) = done.map_err(|e| sqlx::Error::Protocol(format!("a read's thread failed: {e}")))?;
        self.give_back(reader);
        match result.map_err(error)? {
            Read::Rows(rows) => Ok(rows),
            Read::NotReadOnly => Err(sqlx::Error::Protocol("a read became a write".into())),
        }
    }

    /// An idle reader, or a new one.
    fn reader(&self) -> Result<Reader, sqlx::Error> {
        if let Some(reader) = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(reader);
        }
        let conn = open(&self.path).map_err(error)?;
        let deadline = Arc::new(AtomicU64::new(u64::MAX));
        let at = deadline.clone();
        conn.progress_handler(PROGRESS_OPS, Some(move || nanos_since_epoch(Instant::now()) > at.load(Ordering::Relaxed)));
        Ok(Reader { conn, deadline })
    }

    fn give_back(&self, reader: Reader) {
        reader.deadline.store(u64::MAX, Ordering::Relaxed);
        let mut idle = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_READERS && !self.closed.load(Ordering::Acquire) {
            idle.push(reader);
        }
    }

    /// Queues a write; the answer once its batch has committed.
    async fn write(&self, sql: &str, args: Vec<Value>) -> Result<Results, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        let job = WriteJob { sql: sql.to_string(), args, reply };
        // A full queue waits like a connection would, and fails the same way: before the
        // write has run.
        match tokio::time::timeout(ACQUIRE_TIMEOUT, self.writes.send(job)).await {
            Ok(Ok(())) => answer.await.map_err(|_| sqlx::Error::PoolClosed)?,
            Ok(Err(_)) => Err(sqlx::Error::PoolClosed),
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
    }
}

/// The arguments as SQLite values.
fn values(args: AnyArguments<'_>) -> Result<Vec<Value>, sqlx::Error> {
    args.values
        .0
        .into_iter()
        .map(|v| {
            Ok(match v {
                AnyValueKind::Null(_) => Value::Null,
                AnyValueKind::Bool(b) => Value::Integer(i64::from(b)),
                AnyValueKind::SmallInt(i) => Value::Integer(i64::from(i)),
                AnyValueKind::Integer(i) => Value::Integer(i64::from(i)),
                AnyValueKind::BigInt(i) => Value::Integer(i),
                AnyValueKind::Real(f) => Value::Real(f64::from(f)),
                AnyValueKind::Double(f) => Value::Real(f),
                AnyValueKind::Text(t) => Value::Text(t.into_owned()),
                AnyValueKind::Blob(b) => Value::Blob(b.into_owned()),
                other => return Err(sqlx::Error::Protocol(format!("an argument SQLite cannot take: {other:?}"))),
            })
        })
        .collect()
}

enum Read {
    Rows(Results),
    /// SQLite says the statement writes: it goes to the writer instead.
    NotReadOnly,
}

fn read(conn: &Connection, sql: &str, args: &[Value]) -> rusqlite::Result<Read> {
    let mut stmt = conn.prepare_cached(sql)?;
    if !stmt.readonly() {
        return Ok(Read::NotReadOnly);
    }
    Ok(Read::Rows(execute(conn, &mut stmt, args)?))
}

/// Binds `args` (`$N` and `?N` by their number, others in order), steps `stmt` to the end
/// and collects its rows and result.
fn execute(conn: &Connection, stmt: &mut rusqlite::Statement<'_>, args: &[Value]) -> rusqlite::Result<Results> {
    for slot in 1..=stmt.parameter_count() {
        let n = stmt
            .parameter_name(slot)
            .and_then(|name| name.strip_prefix('$').or_else(|| name.strip_prefix('?')))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(slot);
        let value = args.get(n.wrapping_sub(1)).ok_or(rusqlite::Error::InvalidParameterCount(n, args.len()))?;
        stmt.raw_bind_parameter(slot, value)?;
    }
    let columns: Vec<AnyColumn> = stmt
        .columns()
        .iter()
        .enumerate()
        .map(|(ordinal, c)| AnyColumn {
            ordinal,
            name: UStr::from(c.name().to_string()),
            type_info: AnyTypeInfo { kind: declared(c.decl_type()) },
        })
        .collect();
    let names: Arc<sqlx_core::HashMap<UStr, usize>> = Arc::new(columns.iter().map(|c| (c.name.clone(), c.ordinal)).collect());
    let readonly = stmt.readonly();
    let mut out = Vec::new();
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(columns.len());
        for (i, column) in columns.iter().enumerate() {
            let kind = match row.get_ref(i)? {
                ValueRef::Null => AnyValueKind::Null(column.type_info.kind),
                ValueRef::Integer(v) => AnyValueKind::BigInt(v),
                ValueRef::Real(v) => AnyValueKind::Double(v),
                ValueRef::Text(t) => AnyValueKind::Text(Cow::Owned(String::from_utf8_lossy(t).into_owned())),
                ValueRef::Blob(b) => AnyValueKind::Blob(Cow::Owned(b.to_vec())),
            };
            values.push(AnyValue { kind });
        }
        out.push(Either::Right(AnyRow { column_names: names.clone(), columns: columns.clone(), values }));
    }
    drop(rows);
    let rows_affected = if readonly { 0 } else { conn.changes() };
    out.push(Either::Left(AnyQueryResult { rows_affected, last_insert_id: Some(conn.last_insert_rowid()) }));
    Ok(out)
}

/// A column's kind from its declared type, as sqlx's SQLite driver reads it (only a null
/// value carries it; every other value has its storage class).
fn declared(decl: Option<&str>) -> AnyTypeInfoKind {
    let Some(decl) = decl.map(str::to_ascii_lowercase) else { return AnyTypeInfoKind::Null };
    if decl.contains("int") {
        AnyTypeInfoKind::BigInt
    } else if decl.contains("char") || decl.contains("clob") || decl.contains("text") {
        AnyTypeInfoKind::Text
    } else if decl.contains("blob") {
        AnyTypeInfoKind::Blob
    } else if decl.contains("real") || decl.contains("floa") || decl.contains("doub") {
        AnyTypeInfoKind::Double
    } else {
        AnyTypeInfoKind::Null
    }
}

/// SQLite's group commit (issue 31). Every lone write of the app comes here, and the
/// writes that queued while the last batch ran are committed in one transaction: on
/// SQLite a commit appends every page it touched to the WAL (a table page and one per
/// index) and the checkpoint copies them back, so a page many writes touch is written
/// once a batch instead of once a write. A write is answered only after its batch
/// commits (nothing answered is lost on restart). A statement that fails fails alone:
/// SQLite undoes only that statement, what ran before it is committed and answered, and
/// the rest of the batch goes on in a new transaction. A lone write runs as before.
fn write_loop(conn: Connection, mut jobs: mpsc::Receiver<WriteJob>, stats: Arc<WriteStats>) {
    let counted = |writes: u64| {
        stats.writes.fetch_add(writes, Ordering::Relaxed);
        stats.commits.fetch_add(1, Ordering::Relaxed);
    };
    let mut last_commit: Option<Instant> = None;
    while let Some(first) = jobs.blocking_recv() {
        if last_commit.is_some_and(|at| at.elapsed() < BUSY) {
            std::thread::sleep(LINGER);
        }
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if batch.len() == 1 {
            let job = batch.remove(0);
            let result = write(&conn, &job);
            if result.is_ok() {
                counted(1);
            }
            let _ = job.reply.send(result);
            last_commit = Some(Instant::now());
            continue;
        }
        let mut done: Vec<(WriteJob, Results)> = Vec::new();
        let mut open = false;
        for job in batch {
            if !open {
                if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
                    let _ = job.reply.send(Err(error(e)));
                    continue;
                }
                open = true;
            }
            match write(&conn, &job) {
                Ok(rows) => done.push((job, rows)),
                Err(e) => {
                    settle(&conn, std::mem::take(&mut done), &counted);
                    open = false;
                    let _ = job.reply.send(Err(e));
                }
            }
        }
        if open {
            settle(&conn, done, &counted);
        }
        last_commit = Some(Instant::now());
    }
}

fn write(conn: &Connection, job: &WriteJob) -> Result<Results, sqlx::Error> {
    let mut stmt = conn.prepare_cached(&job.sql).map_err(error)?;
    execute(conn, &mut stmt, &job.args).map_err(error)
}

/// Commits the open transaction and answers its writes: their results, or the commit's
/// failure (then rolled back).
fn settle(conn: &Connection, done: Vec<(WriteJob, Results)>, counted: &impl Fn(u64)) {
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            counted(done.len() as u64);
            for (job, rows) in done {
                let _ = job.reply.send(Ok(rows));
            }
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            for (job, _) in done {
                let _ = job.reply.send(Err(sqlx::Error::Protocol(format!("the write's transaction did not commit: {e}"))));
            }
        }
    }
}

/// rusqlite's error as sqlx's: SQLite's own failures as database errors (constraint
/// kinds included), the rest as protocol errors.
fn error(e: rusqlite::Error) -> sqlx::Error {
    match e {
        rusqlite::Error::SqliteFailure(f, message) => {
            sqlx::Error::Database(Box::new(SqliteError { code: f.extended_code, message: message.unwrap_or_else(|| f.to_string()) }))
        }
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

/// A failure SQLite reported: its extended result code and message.
#[derive(Debug)]
struct SqliteError {
    code: i32,
    message: String,
}

impl std::fmt::Display for SqliteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for SqliteError {}

impl DatabaseError for SqliteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        use rusqlite::ffi;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => ErrorKind::UniqueViolation,
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}
