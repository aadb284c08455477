//! Mini-program codes made ahead of demand. WeChat can take seconds to draw a code
//! (docs/wechat-api.md: "production systems pre-generate codes"), and while it is slow
//! or answers 45009 a person would wait or see an error; so up to `QR_POOL_SIZE` ticket
//! ids with their codes are kept ready, refilled in the background one at a time. A
//! ready code is only an id and an image: nothing is bound or counted until a browser
//! takes it (`create_ticket` makes the ticket then, so its lifetime counts from the
//! hand-out). When the pool is empty a code is made on the spot, as without a pool.
//!
//! With `WECHAT_QR_MODE=link` there is no pool: the QR holds `PUBLIC_URL/q/<ticket>`,
//! drawn here in a fraction of a millisecond with no WeChat call ([`link_code`]).
//!
//! On SQLite the pool is this process's memory (a restart loses the pool, not a login).
//! On PostgreSQL it is the fleet's: the codes wait in `ready_codes`, a browser takes one
//! with `DELETE … FOR UPDATE SKIP LOCKED … RETURNING` (two takers never get the same
//! code), and one refiller at a time (a transaction-scoped advisory lock) keeps the
//! fleet's pool at `QR_POOL_SIZE`, not `QR_POOL_SIZE` per instance.

use crate::domain::{TicketId, UnixMillis};
use crate::server::clock::Clock;
use crate::server::db::Db;
use crate::server::tokens::new_ticket_id;
use crate::server::wechat::parse::{WechatError, parse_image};
use crate::server::wechat::{MiniProgramCode, WechatClient};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Waits after a failed refill: doubling from 1 s up to a minute; a quota answer waits
/// the minute at once (45009 counts per minute).
fn refill_backoff(failures: u32, quota: bool) -> Duration {
    if quota { Duration::from_secs(60) } else { Duration::from_secs(1 << failures.min(6)).min(Duration::from_secs(60)) }
}

/// A shared code older than this is not handed out (the purge deletes it): a code made
/// under another configuration (app, page) must not wait forever.
pub const SHARED_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// How often an instance looks at the fleet's pool without having taken from it (codes
/// other instances took are refilled by their refillers; this is the safety net).
const SHARED_RECHECK: Duration = Duration::from_secs(10);

/// After a take found the fleet's pool empty, this instance makes codes on the spot for
/// this long without asking the pool again (unless its own refiller adds one first):
/// under a burst most takes would find the pool empty, and each asking is a round trip
/// (issue 31). A code another instance adds meanwhile waits this long at most.
const SHARED_EMPTY_FOR: Duration = Duration::from_millis(500);

/// The advisory lock key of the fleet's refiller ("scanpool").
const LOCK_KEY: i64 = 0x7363_616e_706f_6f6c;

/// A ticket id with its code, not yet anyone's.
struct Ready {
    id: TicketId,
    code: MiniProgramCode,
}

/// What one refill step did.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Made one code.
    Added,
    /// The pool is full.
    Full,
    /// Another instance is refilling the fleet's pool (it counts again after each code).
    Busy,
}

fn store(e: sqlx::Error) -> WechatError {
    WechatError::Transport(format!("code pool store: {e}"))
}

/// The pool.
pub struct CodePool {
    ready: Mutex<VecDeque<Ready>>,
    /// PostgreSQL: the fleet's pool, in `ready_codes`.
    shared: Option<Db>,
    /// How many codes to keep ready (0: no pool).
    size: usize,
    wechat: Arc<WechatClient>,
    clock: Arc<dyn Clock>,
    /// Told when a code was taken (the refiller wakes).
    taken: Notify,
    /// The shared pool's depth as last counted.
    depth: AtomicUsize,
    /// When a take last found the fleet's pool empty, if no code was added here since.
    found_empty: Mutex<Option<Instant>>,
    /// Codes handed out from the pool, and made on the spot because it was empty.
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// `WECHAT_QR_MODE=link`: the public URL the codes point under; no pool, no WeChat.
    links_under: Option<String>,
}

/// Whether the fleet's pool, found empty at `found_empty` (none: not since this
/// instance last added a code), is taken as still empty at `now`.
fn still_empty(found_empty: Option<Instant>, now: Instant) -> bool {
    found_empty.is_some_and(|at| now.saturating_duration_since(at) < SHARED_EMPTY_FOR)
}

/// A plain QR of `PUBLIC_URL/q/<ticket>` (扫普通链接二维码打开小程序), as a PNG.
pub fn link_code(public_url: &str, id: &TicketId) -> MiniProgramCode {
    use image::ImageEncoder as _;
    let url = format!("{public_url}/q/{id}");
    let img = match qrcode::QrCode::with_error_correction_level(url.as_bytes(), qrcode::EcLevel::M) {
        Ok(code) => code.render::<image::Luma<u8>>().min_dimensions(300, 300).build(),
        // PUBLIC_URL is bounded by configuration; a URL too long for a QR draws a blank.
        Err(_) => image::GrayImage::from_pixel(300, 300, image::Luma([255])),
    };
    let mut bytes = Vec::new();
    let _ =
        image::codecs::png::PngEncoder::new(&mut bytes).write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::L8);
    MiniProgramCode { kind: crate::server::wechat::parse::ImageKind::Png, bytes }
}

impl CodePool {
    /// A pool of `size` codes; in `shared` (PostgreSQL) for the whole fleet, else here.
    pub fn new(wechat: Arc<WechatClient>, size: usize, shared: Option<Db>, clock: Arc<dyn Clock>) -> Self {
        CodePool {
            ready: Mutex::default(),
            shared,
            size,
            wechat,
            clock,
            taken: Notify::new(),
            depth: AtomicUsize::new(0),
            found_empty: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            links_under: None,
        }
    }

    /// Codes that are links under `public_url` (`WECHAT_QR_MODE=link`), drawn on demand.
    pub fn links_under(self, public_url: String) -> Self {
        CodePool { links_under: Some(public_url), size: 0, ..self }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Ready>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn found_empty(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.found_empty.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many codes are ready (the fleet's pool: as last counted by this instance).
    pub fn len(&self) -> usize {
        if self.shared.is_some() { self.depth.load(Ordering::Relaxed) } else { self.lock().len() }
    }

    /// True when no code is ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A fresh ticket id and its code: from the pool, else made now.
    pub async fn take(&self) -> Result<(TicketId, MiniProgramCode), WechatError> {
        if let Some(public_url) = &self.links_under {
            let id = new_ticket_id();
            let code = link_code(public_url, &id);
            return Ok((id, code));
        }
        let ready = match &self.shared {
            None => self.lock().pop_front(),
            Some(db) if self.size > 0 && !self.recently_empty() => {
                let taken = self.take_shared(db).await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "the fleet's code pool is unreachable; making a code on the spot");
                    None
                });
                if taken.is_none() {
                    *self.found_empty() = Some(Instant::now());
                }
                taken
            }
            Some(_) => None,
        };
        if self.size > 0 {
            self.taken.notify_one();
        }
        if let Some(r) = ready {
            self.hits.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("scanlogin_code_pool_takes_total", "from" => "pool").increment(1);
            return Ok((r.id, r.code));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("scanlogin_code_pool_takes_total", "from" => "demand").increment(1);
        let id = new_ticket_id();
        let code = self.wechat.mini_program_code(id.as_str()).await?;
        Ok((id, code))
    }

    /// A take found the fleet's pool empty less than [`SHARED_EMPTY_FOR`] ago, and this
    /// instance has added no code since.
    fn recently_empty(&self) -> bool {
        still_empty(*self.found_empty(), Instant::now())
    }

    /// The oldest fresh code of the fleet's pool, removed from it.
    async fn take_shared(&self, db: &Db) -> Result<Option<Ready>, WechatError> {
        let row: Option<(String, Vec<u8>)> = sqlx::query_as(
            "DELETE FROM ready_codes WHERE ticket_id = (SELECT ticket_id FROM ready_codes WHERE made_at > $1 \
             ORDER BY made_at LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING ticket_id, image",
        )
        .bind(self.clock.now().minus(SHARED_MAX_AGE))
        .fetch_optional(db)
        .await
        .map_err(store)?;
        self.depth.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| Some(d.saturating_sub(1))).ok();
        Ok(row.and_then(|(id, bytes)| {
            let kind = parse_image(&bytes).ok()?;
            Some(Ready { id: TicketId::try_from(id).ok()?, code: MiniProgramCode { kind, bytes } })
        }))
    }

    /// Keeps the pool full, one code at a time, for as long as the task runs.
    pub async fn refill(self: Arc<Self>) {
        if self.size == 0 {
            return;
        }
        let mut failures = 0;
        loop {
            match self.fill_one().await {
                Ok(Step::Added) => failures = 0,
                Ok(Step::Full | Step::Busy) => {
                    failures = 0;
                    if self.shared.is_some() {
                        let _ = tokio::time::timeout(SHARED_RECHECK, self.taken.notified()).await;
                    } else {
                        self.taken.notified().await;
                    }
                }
                Err(e) => {
                    failures += 1;
                    let quota = matches!(e.errcode(), Some(45009 | 45011));
                    let wait = refill_backoff(failures, quota);
                    tracing::warn!(error = %e, ready = self.len(), ?wait, "could not make a code ahead; the pool serves what it has");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Makes one code if the pool is short of one.
    async fn fill_one(&self) -> Result<Step, WechatError> {
        let Some(db) = &self.shared else {
            if self.len() >= self.size {
                return Ok(Step::Full);
            }
            let id = new_ticket_id();
            let code = self.wechat.mini_program_code(id.as_str()).await?;
            self.lock().push_back(Ready { id, code });
            return Ok(Step::Added);
        };
        // The lock, the count and the insert in one transaction: the fleet's pool never
        // holds more than `size`.
        let mut conn = db.acquire().await.map_err(store)?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(store)?;
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)").bind(LOCK_KEY).fetch_one(&mut *tx).await.map_err(store)?;
        if !locked {
            return Ok(Step::Busy);
        }
        let now = self.clock.now();
        let ready: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ready_codes WHERE made_at > $1")
            .bind(now.minus(SHARED_MAX_AGE))
            .fetch_one(&mut *tx)
            .await
            .map_err(store)?;
        let ready = usize::try_from(ready).unwrap_or(0);
        self.depth.store(ready, Ordering::Relaxed);
        if ready >= self.size {
            tx.commit().await.map_err(store)?;
            return Ok(Step::Full);
        }
        let id = new_ticket_id();
        let code = self.wechat.mini_program_code(id.as_str()).await?;
        sqlx::query("INSERT INTO ready_codes (ticket_id, image, made_at) VALUES ($1, $2, $3)")
            .bind(id.as_str())
            .bind(code.bytes)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(store)?;
        tx.commit().await.map_err(store)?;
        self.depth.store(ready + 1, Ordering::Relaxed);
        *self.found_empty() = None;
        Ok(Step::Added)
    }

    /// Deletes the fleet's codes too old to hand out.
    pub async fn purge(&self, now: UnixMillis) -> Result<u64, sqlx::Error> {
        let Some(db) = &self.shared else { return Ok(0) };
        let done = sqlx::query("DELETE FROM ready_codes WHERE made_at <= $1").bind(now.minus(SHARED_MAX_AGE)).execute(db).await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_found_empty_is_not_asked_again_for_a_moment() {
        let now = Instant::now();
        let later = now + SHARED_EMPTY_FOR;
        assert!(!still_empty(None, now), "never found empty (or refilled here since): asked");
        assert!(still_empty(Some(now), now), "just found empty: codes are made on the spot");
        assert!(still_empty(Some(now), later - Duration::from_millis(1)));
        assert!(!still_empty(Some(now), later), "asked again once the moment has passed");
    }

    #[test]
    fn refills_back_off_and_wait_out_a_quota() {
        assert_eq!(refill_backoff(1, false), Duration::from_secs(2));
        assert_eq!(refill_backoff(3, false), Duration::from_secs(8));
        assert_eq!(refill_backoff(30, false), Duration::from_secs(60));
        assert_eq!(refill_backoff(1, true), Duration::from_secs(60));
    }
}
