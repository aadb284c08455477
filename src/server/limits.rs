//! Rate limits (GCRA, via `governor`): ticket creation per client and per browser,
//! the phone endpoints per client and per ticket and client. A refused call answers
//! 429 `rate_limited` with `Retry-After` and changes nothing.
//!
//! A "client" is an IPv4 address, or an IPv6 /64: one customer's network, which hands
//! its machines as many addresses as it likes.

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

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |l| l.len())
    }

    /// True when it holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    /// Tickets alive at once across the service (0 = unlimited): past it, 503 `busy`.
    pub max_live_tickets: i64,
}

/// The key a client's IP is counted under: the address itself for IPv4 (IPv4-mapped
/// IPv6 included), its /64 for IPv6. Anything that is not an IP counts as itself.
pub fn client_bucket(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(v4) => v4.to_string(),
        Err(_) => ip.to_string(),
    }
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
    fn clients_are_addresses_or_ipv6_64s() {
        assert_eq!(client_bucket("1.2.3.4"), "1.2.3.4");
        assert_eq!(client_bucket("::ffff:1.2.3.4"), "1.2.3.4");
        assert_eq!(client_bucket("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(client_bucket("2001:db8:1:2:bbbb::9"), client_bucket("2001:db8:1:2::1"));
        assert_ne!(client_bucket("2001:db8:1:3::1"), client_bucket("2001:db8:1:2::1"));
    }

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
