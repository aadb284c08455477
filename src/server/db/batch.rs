//! PostgreSQL's lone writes sent together (issue 31), under the app's `Db` executor.
//!
//! On PostgreSQL a statement costs a round trip: a wake-up on each side and the kernel's
//! loopback in between, more than the statement's own work for the app's one-row writes
//! (docs/benchmarks.md). Under load many such writes are waiting at once, each for a
//! connection of its own. Here a **lone write** (an INSERT, UPDATE or DELETE that returns
//! no rows, `WITH` ones included, to a login's tables: [`BATCHED_TABLES`]) is queued, and a writer sends every write queued while
//! its last batch ran as *one* message of the simple-query protocol: `w1; w2; …`, one
//! round trip and one commit for all, each write's count of rows read back in order.
//!
//! The simple-query protocol has no parameters, so each write is sent with its arguments
//! written into it as typed literals ([`render`]): text and blobs as escape strings
//! (`E'…'`, read the same whatever `standard_conforming_strings` says) cast to `text` and
//! `bytea`, numbers quoted and cast, `NULL` cast — the very types sqlx would have bound
//! (`AnyArguments::convert_to`), so each write means what it meant with parameters. A
//! statement the renderer does not fully understand (a `$` that is no parameter, a
//! backslash, a `;`, a comment) is not queued: it runs as before, with parameters.
//!
//! PostgreSQL runs the writes of one message as one transaction. When one fails, none of
//! them is committed: each is then sent again alone, so it succeeds or fails as if it had
//! always been alone, with its own error. When the connection fails instead, whether the
//! batch was committed is unknown: every write of it fails (as a lone write's would).
//! An idle writer sends a write at once: alone, at no cost but a task's hand-off.

use super::Db;
use sqlx::any::{AnyArguments, AnyQueryResult};
use sqlx::{Execute, Executor};
use sqlx_core::any::{AnyTypeInfoKind, AnyValueKind};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::oneshot;

/// Writes sent in one message at most.
const MAX_BATCH: usize = 64;

/// Batches in flight at once, each on a connection of its own.
const WRITERS: usize = 2;

/// The queue of lone writes and its writers.
#[derive(Debug, Default)]
pub(super) struct Batches {
    queue: Mutex<Queue>,
    writes: AtomicU64,
    round_trips: AtomicU64,
}

#[derive(Debug, Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Writers running (at most [`WRITERS`]).
    writers: usize,
}

/// A rendered write and who waits for its count.
#[derive(Debug)]
struct Job {
    sql: String,
    reply: oneshot::Sender<Result<AnyQueryResult, sqlx::Error>>,
}

/// `query`, a lone write ([`is_lone_write`]), with its arguments written in; or, when
/// the renderer does not fully understand it, `query` again to run as usual.
pub(super) fn rendered<'q>(
    mut query: impl Execute<'q, sqlx::Any>,
) -> Result<Result<String, sqlx::query::Query<'q, sqlx::Any, AnyArguments<'q>>>, sqlx::Error> {
    let sql = query.sql();
    let args = query.take_arguments().map_err(sqlx::Error::Encode)?.unwrap_or_default();
    Ok(render(sql, &args.values.0).ok_or_else(|| sqlx::query_with(sql, args)))
}

/// Tables whose writes may go out together: those of a login, which hold no secret (a
/// session's id and a ticket's tokens are stored as digests). A write goes out with its
/// values written into its text, and PostgreSQL's log quotes the text of a statement that
/// fails (`log_min_error_statement`), where a parameter's value is not quoted: so a
/// write that holds a secret (WeChat's access token, a signing key) keeps its parameters.
const BATCHED_TABLES: [&str; 4] = ["TICKETS", "SESSIONS", "LOGINS", "AUDIT_EVENTS"];

/// An INSERT, UPDATE or DELETE (or a `WITH` whose statements are all of those) into
/// [`BATCHED_TABLES`] only, that returns no rows, alone in its text.
pub(super) fn is_lone_write(sql: &str) -> bool {
    // Reads, most statements, are told by their first word alone.
    let first = sql.split_whitespace().next().unwrap_or("");
    if !["INSERT", "UPDATE", "DELETE", "WITH"].iter().any(|k| first.eq_ignore_ascii_case(k)) {
        return false;
    }
    let upper = sql.to_ascii_uppercase();
    let words: Vec<&str> = upper.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',').filter(|w| !w.is_empty()).collect();
    let writes = matches!(words.first(), Some(&("INSERT" | "UPDATE" | "DELETE")));
    let with_writes = words.first() == Some(&"WITH") && !words.contains(&"SELECT");
    // Every table written, named after its INSERT INTO, UPDATE or DELETE FROM.
    let tables_allowed = words.windows(3).all(|w| {
        let table = match w {
            ["INSERT", "INTO", t] | ["DELETE", "FROM", t] => Some(*t),
            ["UPDATE", t, _] => Some(*t),
            _ => None,
        };
        table.is_none_or(|t| BATCHED_TABLES.contains(&t))
    });
    let plain = !sql.contains(';') && !sql.contains('\\') && !sql.contains("--") && !sql.contains("/*");
    (writes || with_writes) && tables_allowed && !words.contains(&"RETURNING") && plain
}

/// `sql` with `$1`, `$2`, … replaced by `args` as typed literals; `None` when it holds a
/// `$` that is not a parameter in range, or quotes that do not close.
pub(super) fn render(sql: &str, args: &[AnyValueKind<'_>]) -> Option<String> {
    let mut out = String::with_capacity(sql.len() + 32 * args.len());
    let mut chars = sql.chars().peekable();
    // Inside '…' or "…" (a doubled quote stays inside): copied as it is.
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                out.push(c);
            }
            '$' => {
                let mut n = 0usize;
                let mut digits = 0;
                while let Some(&d) = chars.peek() {
                    let Some(v) = d.to_digit(10) else { break };
                    n = n.checked_mul(10)?.checked_add(v as usize)?;
                    digits += 1;
                    chars.next();
                }
                if digits == 0 || n == 0 {
                    return None;
                }
                literal(&mut out, args.get(n - 1)?)?;
            }
            _ => out.push(c),
        }
    }
    quote.is_none().then_some(out)
}

/// `v` as PostgreSQL reads it, of the type sqlx binds it as.
fn literal(out: &mut String, v: &AnyValueKind<'_>) -> Option<()> {
    match v {
        AnyValueKind::Null(kind) => {
            // As `AnyArguments::convert_to` binds a NULL of each kind.
            let ty = match kind {
                AnyTypeInfoKind::Null | AnyTypeInfoKind::Integer => "int4",
                AnyTypeInfoKind::Bool => "bool",
                AnyTypeInfoKind::SmallInt => "int2",
                AnyTypeInfoKind::BigInt => "int8",
                AnyTypeInfoKind::Real => "float8",
                AnyTypeInfoKind::Double => "float4",
                AnyTypeInfoKind::Text => "text",
                AnyTypeInfoKind::Blob => "bytea",
            };
            write!(out, "NULL::{ty}").ok()?;
        }
        AnyValueKind::Bool(b) => out.push_str(if *b { "TRUE" } else { "FALSE" }),
        AnyValueKind::SmallInt(i) => write!(out, "'{i}'::int2").ok()?,
        AnyValueKind::Integer(i) => write!(out, "'{i}'::int4").ok()?,
        AnyValueKind::BigInt(i) => write!(out, "'{i}'::int8").ok()?,
        AnyValueKind::Real(f) => float(out, f64::from(*f), "float4")?,
        AnyValueKind::Double(f) => float(out, *f, "float8")?,
        AnyValueKind::Text(t) => {
            out.push_str("E'");
            for c in t.chars() {
                match c {
                    '\'' => out.push_str("''"),
                    '\\' => out.push_str("\\\\"),
                    // PostgreSQL's text cannot hold it: refused, as a parameter would be.
                    '\0' => return None,
                    c => out.push(c),
                }
            }
            out.push_str("'::text");
        }
        AnyValueKind::Blob(b) => {
            // An escape string too: `\\x…` whatever `standard_conforming_strings` says.
            out.push_str("E'\\\\x");
            for byte in b.iter() {
                write!(out, "{byte:02x}").ok()?;
            }
            out.push_str("'::bytea");
        }
        _ => return None,
    }
    Some(())
}

fn float(out: &mut String, f: f64, ty: &str) -> Option<()> {
    let text = if f.is_nan() {
        "NaN".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity".to_string() } else { "-Infinity".to_string() }
    } else {
        format!("{f:?}")
    };
    write!(out, "'{text}'::{ty}").ok()
}

impl Batches {
    /// Lone writes answered, and the round trips they took.
    pub(super) fn stats(&self) -> (u64, u64) {
        (self.writes.load(Ordering::Relaxed), self.round_trips.load(Ordering::Relaxed))
    }

    /// Queues `sql` (a rendered lone write) and answers its count once its batch is done.
    pub(super) async fn write(&self, db: &Db, sql: String) -> Result<AnyQueryResult, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.jobs.push_back(Job { sql, reply });
            let start = q.writers < WRITERS;
            if start {
                q.writers += 1;
            }
            start
        };
        if start {
            let db = db.clone();
            tokio::spawn(async move { db.batches.drain(&db).await });
        }
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }

    /// A writer: sends what is queued, batch after batch, until nothing is.
    async fn drain(&self, db: &Db) {
        // A writer that ends without seeing the queue empty (it panicked, or the runtime
        // dropped it) gives its place back, so that the next write starts another.
        struct Place<'a> {
            batches: &'a Batches,
            given_back: bool,
        }
        impl Drop for Place<'_> {
            fn drop(&mut self) {
                if !self.given_back {
                    self.batches.queue.lock().unwrap_or_else(|e| e.into_inner()).writers -= 1;
                }
            }
        }
        let mut place = Place { batches: self, given_back: false };
        loop {
            let jobs: Vec<Job> = {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                if q.jobs.is_empty() {
                    // In the lock that a new write takes to see whether a writer runs.
                    q.writers -= 1;
                    place.given_back = true;
                    return;
                }
                let n = q.jobs.len().min(MAX_BATCH);
                q.jobs.drain(..n).collect()
            };
            self.writes.fetch_add(jobs.len() as u64, Ordering::Relaxed);
            let text = jobs.iter().map(|j| j.sql.as_str()).collect::<Vec<_>>().join(";\n");
            match self.send(db, &text, jobs.len()).await {
                Ok(counts) => {
                    for (job, count) in jobs.into_iter().zip(counts) {
                        let _ = job.reply.send(Ok(count));
                    }
                }
                // A write failed and none was committed: each again, alone.
                Err(e) if jobs.len() > 1 && e.as_database_error().is_some() => {
                    for job in jobs {
                        let alone = self.send(db, &job.sql, 1).await.map(|mut c| c.remove(0));
                        let _ = job.reply.send(alone);
                    }
                }
                Err(e) => {
                    let mut jobs = jobs.into_iter();
                    let what = e.to_string();
                    if let Some(first) = jobs.next() {
                        let _ = first.reply.send(Err(e));
                    }
                    for job in jobs {
                        let copy = std::io::Error::other(format!("a write sent with others: {what}"));
                        let _ = job.reply.send(Err(sqlx::Error::Io(copy)));
                    }
                }
            }
        }
    }

    /// One message of `n` writes: their counts, in order.
    async fn send(&self, db: &Db, text: &str, n: usize) -> Result<Vec<AnyQueryResult>, sqlx::Error> {
        use futures_util::TryStreamExt as _;
        let mut conn = db.acquire().await?;
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let results = conn.fetch_many(sqlx::raw_sql(text)).try_collect::<Vec<_>>().await;
        let results = match results {
            Ok(r) => r,
            Err(e) => {
                conn.close_if_gone(&e);
                return Err(e);
            }
        };
        let counts: Vec<AnyQueryResult> = results.into_iter().filter_map(|r| r.left()).collect();
        if counts.len() != n {
            return Err(sqlx::Error::Protocol(format!("{n} writes sent together, {} answered", counts.len())));
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn lone_writes_are_told_from_the_rest() {
        assert!(is_lone_write("INSERT INTO tickets (a) VALUES ($1)"));
        assert!(is_lone_write("  update sessions SET a = $1 WHERE id = $2"));
        assert!(is_lone_write("DELETE FROM sessions WHERE id = $1"));
        assert!(is_lone_write("WITH a AS (INSERT INTO logins VALUES ($1)) INSERT INTO audit_events VALUES ($1)"));
        assert!(!is_lone_write("INSERT INTO tickets (a) VALUES ($1) RETURNING id"), "returns rows");
        assert!(!is_lone_write("WITH a AS (SELECT 1) DELETE FROM tickets"), "a WITH that reads is left alone");
        assert!(!is_lone_write("SELECT * FROM tickets"));
        assert!(!is_lone_write("INSERT INTO tickets VALUES (1); DELETE FROM tickets"), "two statements");
        assert!(!is_lone_write("INSERT INTO tickets VALUES (E'\\n')"), "a backslash");
        assert!(!is_lone_write("INSERT INTO tickets VALUES ($1) -- it's"), "a comment");
        // Secrets keep their parameters.
        assert!(!is_lone_write("DELETE FROM wechat_tokens WHERE appid = $1 AND token = $2"));
        assert!(!is_lone_write("INSERT INTO oidc_keys (kid, private_pem) VALUES ($1, $2)"));
        assert!(!is_lone_write("WITH a AS (INSERT INTO logins VALUES ($1)) UPDATE oidc_keys SET private_pem = $1"));
    }

    #[test]
    fn arguments_are_written_in_as_typed_literals() {
        let args = [
            AnyValueKind::Text(Cow::Borrowed("it's \\ $2 '; DROP TABLE t; --")),
            AnyValueKind::BigInt(i64::MIN),
            AnyValueKind::Null(AnyTypeInfoKind::BigInt),
            AnyValueKind::Bool(true),
            AnyValueKind::Double(f64::NAN),
            AnyValueKind::Blob(Cow::Borrowed(&[0, 255])),
            AnyValueKind::Integer(-7),
            AnyValueKind::Double(1.5),
            AnyValueKind::Null(AnyTypeInfoKind::Text),
            AnyValueKind::SmallInt(3),
        ];
        let sql =
            "UPDATE t SET a = $1, b = $2, c = $3, d = $4, e = $5, f = $6, g = $7, h = $8, i = $9 WHERE s = 'a$1' AND j = $10 AND k = $2";
        assert_eq!(
            render(sql, &args).unwrap(),
            "UPDATE t SET a = E'it''s \\\\ $2 ''; DROP TABLE t; --'::text, b = '-9223372036854775808'::int8, c = NULL::int8, \
             d = TRUE, e = 'NaN'::float8, f = E'\\\\x00ff'::bytea, g = '-7'::int4, h = '1.5'::float8, i = NULL::text \
             WHERE s = 'a$1' AND j = '3'::int2 AND k = '-9223372036854775808'::int8"
        );
        assert_eq!(render("SELECT $2", &args[..1]), None, "a parameter out of range");
        assert_eq!(render("SELECT $0", &args), None);
        assert_eq!(render("SELECT $a", &args), None, "a `$` that is no parameter");
        assert_eq!(render("SELECT 'open", &args), None, "a quote that does not close");
        assert_eq!(render("SELECT $1", &[AnyValueKind::Text(Cow::Borrowed("a\0b"))]), None, "a NUL, which text cannot hold");
    }
}
