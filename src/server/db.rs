//! The database: SQLite by default, PostgreSQL when `DATABASE_URL` says so, through
//! sqlx's `Any` driver so one set of queries serves both. Migrations run at start-up.

use crate::server::error::StartupError;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use std::time::Duration;

/// Which database is behind the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (a file).
    Sqlite,
    Postgres,
}

impl Backend {
    /// Pool size when not configured. For SQLite, 1, 2, 4 and 8 connections gave the same
    /// login throughput within the bench's noise (docs/benchmarks.md): it writes one at a
    /// time, and reads beside the writer (WAL) need only a few.
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

/// The default database URL.
pub const DEFAULT_URL: &str = "sqlite://data/scanlogin.db";

/// Connects and runs the migrations. On PostgreSQL every connection names its instance
/// (`scanlogin.instance`), which the session trigger puts in its notifications.
/// `max_connections` unset: the backend's default (below).
pub async fn connect(url: &str, instance: &str, max_connections: Option<u32>) -> Result<(AnyPool, Backend), StartupError> {
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
    let pool = AnyPoolOptions::new()
        .max_connections(max_connections.unwrap_or(backend.default_connections()))
        .acquire_timeout(Duration::from_secs(10))
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
    Ok((pool, backend))
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
