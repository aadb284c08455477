//! Rate limits (GCRA, via `governor`): ticket creation per client and per browser,
//! the phone endpoints per client and per ticket and client. A refused call answers
//! 429 `rate_limited` with `Retry-After` and changes nothing.
//!
//! A "client" is an IPv4 address, or an IPv6 /64: one customer's network, which hands
//! its machines as many addresses as it likes.
//!
//! On SQLite (one instance) the limits count in this process. On PostgreSQL they count
//! in the database, so that they hold across the fleet (N calls, not N per instance):
//! the same GCRA in one conditional UPSERT per check, keyed by the SHA-256 of the limit's
//! name and key (no addresses or browser keys stored).

use crate::domain::UnixMillis;
use crate::error::{AppError, ErrorCode};
use crate::server::db::Db;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::num::NonZeroU32;

/// Where a limit counts.
enum Counter {
    /// Unlimited.
    Off,
    /// In this process.
    Local(DefaultKeyedRateLimiter<String>),
    /// In PostgreSQL's `rate_limits` table, shared by every instance.
    Shared { pool: Db, name: &'static str, per_minute: u32 },
}

/// One keyed limit.
pub struct KeyedLimit(Counter);

/// One GCRA step for the fleet: the key's theoretical arrival time moves on by one
/// interval, unless that would put it more than a minute (the burst) ahead of now.
const SHARED_CHECK: &str = "INSERT INTO rate_limits (key, tat) VALUES ($1, $2 + $3) \
     ON CONFLICT (key) DO UPDATE SET tat = GREATEST(rate_limits.tat, $2) + $3 \
     WHERE GREATEST(rate_limits.tat, $2) + $3 - $2 <= 60000 \
     RETURNING tat";

impl KeyedLimit {
    /// `per_minute` calls per key and minute (also the burst), counted in this process;
    /// 0 switches it off.
    pub fn per_minute(per_minute: u32) -> Self {
        KeyedLimit(
            NonZeroU32::new(per_minute).map_or(Counter::Off, |n| Counter::Local(DefaultKeyedRateLimiter::keyed(Quota::per_minute(n)))),
        )
    }

    /// The same limit counted in the database (`name` tells limits apart).
    pub fn shared(per_minute: u32, pool: Db, name: &'static str) -> Self {
        KeyedLimit(if per_minute == 0 { Counter::Off } else { Counter::Shared { pool, name, per_minute } })
    }

    /// Counts a call for `key`; `rate_limited` with a retry hint when over the limit.
    pub async fn check(&self, key: &str) -> Result<(), AppError> {
        match &self.0 {
            Counter::Off => Ok(()),
            Counter::Local(limiter) => limiter.check_key(&key.to_string()).map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                limited(wait.as_secs() + 1)
            }),
            Counter::Shared { pool, name, per_minute } => {
                let interval = 60_000 / i64::from(*per_minute).max(1);
                let hashed = crate::server::tokens::TokenHash::of(&format!("{name}\n{key}"));
                let allowed: Option<(i64,)> = sqlx::query_as(SHARED_CHECK)
                    .bind(hashed.as_str())
                    .bind(crate::server::clock::Clock::now(&crate::server::clock::SystemClock))
                    .bind(interval)
                    .fetch_optional(pool)
                    .await
                    .map_err(AppError::from)?;
                match allowed {
                    Some(_) => Ok(()),
                    None => Err(limited(u64::try_from(interval / 1000).unwrap_or(0) + 1)),
                }
            }
        }
    }

    /// How many keys it holds in this process.
    pub fn len(&self) -> usize {
        match &self.0 {
            Counter::Local(l) => l.len(),
            _ => 0,
        }
    }

    /// True when it holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets keys that are back to a full quota (memory stays bounded).
    pub fn forget_idle(&self) {
        if let Counter::Local(l) = &self.0 {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

fn limited(retry_after: u64) -> AppError {
    tracing::info!(retry_after, "rate limited");
    AppError::new(ErrorCode::RateLimited).retry_after(retry_after)
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
    /// `GET /oidc/authorize` per client IP (each may store a pending request and, signed
    /// in, a code and an audit event).
    pub oidc_authorize_per_ip: KeyedLimit,
    /// `POST /oidc/token` per client IP.
    pub oidc_token_per_ip: KeyedLimit,
    /// Tickets one browser may have alive at once (0 = unlimited).
    pub live_tickets_per_browser: i64,
    /// Tickets alive at once across the service (0 = unlimited): past it, 503 `busy`.
    pub max_live_tickets: i64,
    /// PostgreSQL, where the limits count for the fleet; none: in this process.
    pub shared: Option<Db>,
}

/// The key a client's IP is counted under: the address itself for IPv4 (IPv4-mapped
/// IPv6 included), its /64 for IPv6.
pub fn client_bucket(ip: Option<std::net::IpAddr>) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        Some(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(v4) => v4.to_string(),
        // No socket peer (never over the network): one bucket for all of them.
        None => "unknown".into(),
    }
}

impl Limits {
    /// Deletes the shared counters that are back to a full quota (their time has passed).
    pub async fn purge_shared(&self, now: UnixMillis) -> Result<u64, sqlx::Error> {
        let Some(pool) = &self.shared else { return Ok(0) };
        Ok(sqlx::query("DELETE FROM rate_limits WHERE tat < $1").bind(now).execute(pool).await?.rows_affected())
    }

    /// Forgets idle keys of every limit.
    pub fn forget_idle(&self) {
        for l in [
            &self.tickets_per_ip,
            &self.tickets_per_browser,
            &self.phone_per_ip,
            &self.phone_per_ticket,
            &self.oidc_authorize_per_ip,
            &self.oidc_token_per_ip,
        ] {
            l.forget_idle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_addresses_or_ipv6_64s() {
        assert_eq!(client_bucket(Some("1.2.3.4".parse().unwrap())), "1.2.3.4");
        assert_eq!(client_bucket(Some("::ffff:1.2.3.4".parse().unwrap())), "1.2.3.4");
        assert_eq!(client_bucket(Some("2001:db8:1:2:aaaa::1".parse().unwrap())), "2001:db8:1:2::/64");
        assert_eq!(client_bucket(Some("2001:db8:1:2:bbbb::9".parse().unwrap())), client_bucket(Some("2001:db8:1:2::1".parse().unwrap())));
        assert_ne!(client_bucket(Some("2001:db8:1:3::1".parse().unwrap())), client_bucket(Some("2001:db8:1:2::1".parse().unwrap())));
        assert_eq!(client_bucket(None), "unknown");
    }

    #[tokio::test]
    async fn limits_bite_per_key_and_zero_is_unlimited() {
        let l = KeyedLimit::per_minute(3);
        for _ in 0..3 {
            l.check("a").await.unwrap();
        }
        let e = l.check("a").await.unwrap_err();
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert!(e.retry_after.is_some_and(|s| (1..=21).contains(&s)), "{e:?}");
        l.check("b").await.unwrap();
        let off = KeyedLimit::per_minute(0);
        for _ in 0..1000 {
            off.check("a").await.unwrap();
        }
    }
}
