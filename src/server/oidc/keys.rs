//! The ID-token signing keys (RS256), kept in the database so every instance signs with
//! the same key and a restart logs nobody out. A key is made on first start; a new one
//! after `OIDC_KEY_ROTATE_DAYS`, and the old public key stays in the JWKS long enough
//! for the tokens it signed to expire.
//!
//! Parsed keys are kept in memory and re-read from the database every [`RELOAD`]. A new
//! key is published at once but signs only once it is [`PUBLISH_AHEAD_MS`] old, so every
//! instance's JWKS lists a key before any instance signs with it.

use crate::domain::UnixMillis;
use crate::server::db::Db;
use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeySet, CoreRsaPrivateSigningKey};
use openidconnect::{JsonWebKeyId, PrivateSigningKey};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// RSA modulus size of new keys.
const RSA_BITS: usize = 2048;

/// How often the keys are re-read from the database (another instance may have rotated).
pub const RELOAD: Duration = Duration::from_secs(60);

/// A new key signs only once it is this old: longer than every instance's [`RELOAD`].
pub const PUBLISH_AHEAD_MS: i64 = 2 * RELOAD.as_millis() as i64;

/// One key, parsed.
struct Key {
    created_at: UnixMillis,
    signing: Arc<CoreRsaPrivateSigningKey>,
    public: CoreJsonWebKey,
}

/// The keys, newest first, and when they were read.
type Loaded = (Instant, Arc<Vec<Key>>);

/// The keys in the `oidc_keys` table.
#[derive(Clone)]
pub struct SigningKeys {
    pool: Db,
    reload: Duration,
    loaded: Arc<Mutex<Option<Loaded>>>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys").field("reload", &self.reload).finish_non_exhaustive()
    }
}

fn db(e: sqlx::Error) -> String {
    e.to_string()
}

impl SigningKeys {
    pub fn new(pool: Db) -> Self {
        Self::reloading_every(pool, RELOAD)
    }

    /// Keys re-read every `reload` (tests use a short one).
    pub fn reloading_every(pool: Db, reload: Duration) -> Self {
        SigningKeys { pool, reload, loaded: Arc::default() }
    }

    /// Makes a key when there is none, or when the newest is older than `rotate_ms`.
    /// Returns whether it made one.
    pub async fn ensure(&self, now: UnixMillis, rotate_ms: i64) -> Result<bool, String> {
        let newest: Option<(i64,)> = sqlx::query_as("SELECT created_at FROM oidc_keys ORDER BY created_at DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        if newest.is_some_and(|(at,)| now.since(UnixMillis(at)) < rotate_ms) {
            return Ok(false);
        }
        self.rotate(now).await?;
        Ok(true)
    }

    /// Makes a new signing key now; the previous ones stay published.
    pub async fn rotate(&self, now: UnixMillis) -> Result<String, String> {
        let pem = tokio::task::spawn_blocking(|| {
            use rsa::pkcs1::EncodeRsaPrivateKey as _;
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS).map_err(|e| e.to_string())?;
            key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).map(|p| p.to_string()).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        let kid = crate::server::tokens::random_token(12);
        sqlx::query("INSERT INTO oidc_keys (kid, private_pem, created_at) VALUES ($1, $2, $3)")
            .bind(&kid)
            .bind(pem)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = None;
        tracing::info!(kid, "made a new ID-token signing key");
        Ok(kid)
    }

    /// Every key, newest first: from memory, or read and parsed when that is older
    /// than the reload interval.
    async fn keys(&self) -> Result<Arc<Vec<Key>>, String> {
        if let Some((at, keys)) = &*self.loaded.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < self.reload
        {
            return Ok(keys.clone());
        }
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT kid, private_pem, created_at FROM oidc_keys ORDER BY created_at DESC")
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        let keys = rows
            .into_iter()
            .map(|(kid, pem, created_at)| {
                let signing = CoreRsaPrivateSigningKey::from_pem(&pem, Some(JsonWebKeyId::new(kid)))?;
                Ok(Key { created_at: UnixMillis(created_at), public: signing.as_verification_key(), signing: Arc::new(signing) })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let keys = Arc::new(keys);
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), keys.clone()));
        Ok(keys)
    }

    /// The key new tokens are signed with: the newest that has been published for
    /// [`PUBLISH_AHEAD_MS`], or the oldest when none has (the first start).
    pub async fn current(&self, now: UnixMillis) -> Result<Arc<CoreRsaPrivateSigningKey>, String> {
        let keys = self.keys().await?;
        let key = keys.iter().find(|k| now.since(k.created_at) >= PUBLISH_AHEAD_MS).or(keys.last()).ok_or("no signing key")?;
        Ok(key.signing.clone())
    }

    /// The public keys that may have signed a token still alive: every key not yet
    /// replaced by a signing successor, and every key whose successor began signing
    /// less than `keep_ms` ago.
    pub async fn jwks(&self, now: UnixMillis, keep_ms: i64) -> Result<CoreJsonWebKeySet, String> {
        let keys = self.keys().await?;
        let mut published: Vec<CoreJsonWebKey> = Vec::new();
        // When the next newer key took over signing.
        let mut replaced_at: Option<UnixMillis> = None;
        for k in keys.iter() {
            if replaced_at.is_none_or(|r| now.since(r) < keep_ms) {
                published.push(k.public.clone());
            }
            replaced_at = Some(k.created_at.plus_ms(PUBLISH_AHEAD_MS));
        }
        Ok(CoreJsonWebKeySet::new(published))
    }
}
