//! Rate limits (GCRA, via `governor`): ticket creation per client IP and per browser,
//! the phone endpoints per client IP and per ticket. A refused call answers 429
//! `rate_limited` with `Retry-After` and changes nothing.

use crate::error::{AppError, ErrorCode};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::num::NonZeroU32;

/// One keyed limit; `None` means unlimited.
pub struct KeyedLimit(Option<DefaultKeyedRateLimiter<String>>);

impl KeyedLimit {
    /// `per_minute` calls per key and minute (also the burst); 0 switches it off.
    pub fn per_minute(per_minute: u32) -> Self {
        KeyedLimit(NonZeroU32::new(per_minute).map(|n| DefaultKeyedRateLimiter::keyed(Quota::per_minute(n))))
    }

    /// Counts a call for `key`; `rate_limited` with a retry hint when over the limit.
    pub fn check(&self, key: &str) -> Result<(), AppError> {
        let Some(limiter) = &self.0 else { return Ok(()) };
        limiter.check_key(&key.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            tracing::info!(key_kind = "rate", wait_ms = wait.as_millis() as u64, "rate limited");
            AppError::new(ErrorCode::RateLimited).retry_after(wait.as_secs() + 1)
        })
    }

    /// Forgets keys that are back to a full quota (memory stays bounded).
    pub fn forget_idle(&self) {
        if let Some(l) = &self.0 {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// All limits of the service.
pub struct Limits {
    /// `POST /api/login/ticket` per client IP.
    pub tickets_per_ip: KeyedLimit,
    /// `POST /api/login/ticket` per browser (binding key).
    pub tickets_per_browser: KeyedLimit,
    /// `/api/mp/*` per client IP.
    pub phone_per_ip: KeyedLimit,
    /// `/api/mp/*` per ticket.
    pub phone_per_ticket: KeyedLimit,
    /// Tickets one browser may have alive at once (0 = unlimited).
    pub live_tickets_per_browser: i64,
}

impl Limits {
    /// Forgets idle keys of every limit.
    pub fn forget_idle(&self) {
        for l in [&self.tickets_per_ip, &self.tickets_per_browser, &self.phone_per_ip, &self.phone_per_ticket] {
            l.forget_idle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_bite_per_key_and_zero_is_unlimited() {
        let l = KeyedLimit::per_minute(3);
        for _ in 0..3 {
            l.check("a").unwrap();
        }
        let e = l.check("a").unwrap_err();
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert!(e.retry_after.is_some_and(|s| (1..=21).contains(&s)), "{e:?}");
        l.check("b").unwrap();
        let off = KeyedLimit::per_minute(0);
        for _ in 0..1000 {
            off.check("a").unwrap();
        }
    }
}
