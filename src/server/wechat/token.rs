//! The access-token cache: one fetcher at a time (single flight), refreshed a margin
//! before expiry, and dropped on a token error only if it is still the failing one.

use crate::domain::UnixMillis;
use crate::server::clock::Clock;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// An access token. Never printed: its `Debug` is redacted and it is not `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Arc<str>);

impl AccessToken {
    /// Wraps a token string.
    pub fn new(s: impl Into<Arc<str>>) -> Self {
        AccessToken(s.into())
    }
    /// The token, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

struct Cached {
    token: AccessToken,
    fetched_at: UnixMillis,
    expires_at: UnixMillis,
}

/// Whether a token fetched at `fetched_at` and expiring at `expires_at` is still used at
/// `now`: until `margin` before expiry, the margin at most half its lifetime.
pub fn is_fresh(fetched_at: UnixMillis, expires_at: UnixMillis, margin: Duration, now: UnixMillis) -> bool {
    let margin = margin.min(expires_at.since(fetched_at) / 2);
    now < expires_at.minus(margin)
}

/// Caches one access token.
pub struct TokenCache {
    slot: tokio::sync::Mutex<Option<Cached>>,
    clock: Arc<dyn Clock>,
    margin: Duration,
}

impl TokenCache {
    /// A cache refreshing `margin_secs` before expiry. With `stable_token` the margin
    /// must stay under 300 s, or refreshing returns the same token and loops; it is
    /// also never more than half the token's lifetime, for the same reason.
    pub fn new(clock: Arc<dyn Clock>, margin_secs: u64) -> Self {
        TokenCache { slot: tokio::sync::Mutex::new(None), clock, margin: Duration::from_secs(margin_secs.min(299)) }
    }

    fn is_fresh(&self, c: &Cached, now: UnixMillis) -> bool {
        is_fresh(c.fetched_at, c.expires_at, self.margin, now)
    }

    /// The cached token, or the result of `fetch` (`(token, expires_in seconds)`).
    /// Concurrent callers wait for the one fetch in flight instead of starting theirs.
    pub async fn get_or_fetch<E, F, Fut>(&self, fetch: F) -> Result<AccessToken, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(AccessToken, u64), E>>,
    {
        let mut slot = self.slot.lock().await;
        let now = self.clock.now();
        if let Some(c) = slot.as_ref().filter(|c| self.is_fresh(c, now)) {
            return Ok(c.token.clone());
        }
        let (token, expires_in) = fetch().await?;
        let now = self.clock.now();
        let life = Duration::from_secs(expires_in);
        *slot = Some(Cached { token: token.clone(), fetched_at: now, expires_at: now.plus(life) });
        Ok(token)
    }

    /// Drops the cached token if it is still `failed` (another caller may already have
    /// replaced it; dropping that one would start a stampede).
    pub async fn invalidate(&self, failed: &AccessToken) -> bool {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|c| &c.token == failed) {
            *slot = None;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::clock::FakeClock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting_fetch(calls: &Arc<AtomicUsize>, expires_in: u64) -> impl Future<Output = Result<(AccessToken, u64), ()>> + use<> {
        let calls = calls.clone();
        async move {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Ok((AccessToken::new(format!("tok{n}")), expires_in))
        }
    }

    #[tokio::test]
    async fn hundred_concurrent_callers_one_fetch() {
        let cache = Arc::new(TokenCache::new(Arc::new(FakeClock::at(0)), 240));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move { cache.get_or_fetch(|| counting_fetch(&calls, 7200)).await.unwrap() }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().expose(), "tok1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn refreshes_within_margin_and_never_loops() {
        let clock = FakeClock::at(0);
        let cache = TokenCache::new(Arc::new(clock.clone()), 240);
        let calls = Arc::new(AtomicUsize::new(0));
        cache.get_or_fetch(|| counting_fetch(&calls, 7200)).await.unwrap();
        clock.advance_ms((7200 - 241) * 1000);
        assert_eq!(cache.get_or_fetch(|| counting_fetch(&calls, 7200)).await.unwrap().expose(), "tok1");
        clock.advance_ms(2000); // now 239 s remain: inside the margin
        assert_eq!(cache.get_or_fetch(|| counting_fetch(&calls, 7200)).await.unwrap().expose(), "tok2");
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        // A token answered with a short remaining life (stable_token near expiry) is used
        // for half that life, not refetched on every call.
        let cache = TokenCache::new(Arc::new(clock.clone()), 240);
        let calls = Arc::new(AtomicUsize::new(0));
        cache.get_or_fetch(|| counting_fetch(&calls, 100)).await.unwrap();
        cache.get_or_fetch(|| counting_fetch(&calls, 100)).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        clock.advance_ms(51_000);
        cache.get_or_fetch(|| counting_fetch(&calls, 100)).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn compare_and_drop() {
        let cache = TokenCache::new(Arc::new(FakeClock::at(0)), 240);
        let calls = Arc::new(AtomicUsize::new(0));
        let old = cache.get_or_fetch(|| counting_fetch(&calls, 7200)).await.unwrap();
        assert!(cache.invalidate(&old).await);
        let new = cache.get_or_fetch(|| counting_fetch(&calls, 7200)).await.unwrap();
        assert_ne!(old, new);
        // A late report about the old token must not drop the new one.
        assert!(!cache.invalidate(&old).await);
        assert_eq!(cache.get_or_fetch(|| counting_fetch(&calls, 7200)).await.unwrap(), new);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(format!("{new:?}"), "AccessToken([redacted])");
    }
}
