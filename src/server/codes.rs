//! Mini-program codes made ahead of demand. WeChat can take seconds to draw a code
//! (docs/wechat-api.md: "production systems pre-generate codes"), and while it is slow
//! or answers 45009 a person would wait or see an error; so each instance keeps up to
//! `QR_POOL_SIZE` ticket ids with their codes ready, refilled in the background one at a
//! time. A ready code is only an id and an image in this process's memory: nothing is
//! stored, bound or counted until a browser takes it (`create_ticket` makes the ticket
//! then, so its lifetime counts from the hand-out). A restart loses the pool, not a
//! login. When the pool is empty a code is made on the spot, as without a pool.

use crate::domain::TicketId;
use crate::server::tokens::new_ticket_id;
use crate::server::wechat::parse::WechatError;
use crate::server::wechat::{MiniProgramCode, WechatClient};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Waits after a failed refill: doubling from 1 s up to a minute; a quota answer waits
/// the minute at once (45009 counts per minute).
fn refill_backoff(failures: u32, quota: bool) -> Duration {
    if quota { Duration::from_secs(60) } else { Duration::from_secs(1 << failures.min(6)).min(Duration::from_secs(60)) }
}

/// A ticket id with its code, not yet anyone's.
struct Ready {
    id: TicketId,
    code: MiniProgramCode,
}

/// The pool.
pub struct CodePool {
    ready: Mutex<VecDeque<Ready>>,
    /// How many codes to keep ready (0: no pool).
    size: usize,
    wechat: Arc<WechatClient>,
    /// Told when a code was taken (the refiller wakes).
    taken: Notify,
    /// Codes handed out from the pool, and made on the spot because it was empty.
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl CodePool {
    pub fn new(wechat: Arc<WechatClient>, size: usize) -> Self {
        CodePool { ready: Mutex::default(), size, wechat, taken: Notify::new(), hits: AtomicU64::new(0), misses: AtomicU64::new(0) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Ready>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many codes are ready.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no code is ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A fresh ticket id and its code: from the pool, else made now.
    pub async fn take(&self) -> Result<(TicketId, MiniProgramCode), WechatError> {
        let ready = self.lock().pop_front();
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

    /// Keeps the pool full, one code at a time, for as long as the task runs.
    pub async fn refill(self: Arc<Self>) {
        if self.size == 0 {
            return;
        }
        let mut failures = 0;
        loop {
            while self.len() < self.size {
                let id = new_ticket_id();
                match self.wechat.mini_program_code(id.as_str()).await {
                    Ok(code) => {
                        failures = 0;
                        self.lock().push_back(Ready { id, code });
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
            self.taken.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_back_off_and_wait_out_a_quota() {
        assert_eq!(refill_backoff(1, false), Duration::from_secs(2));
        assert_eq!(refill_backoff(3, false), Duration::from_secs(8));
        assert_eq!(refill_backoff(30, false), Duration::from_secs(60));
        assert_eq!(refill_backoff(1, true), Duration::from_secs(60));
    }
}
