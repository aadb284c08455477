//! The ID-token signing keys (RS256), kept in the database so every instance signs with
//! the same key and a restart logs nobody out. A key is made on first start; a new one
//! after `OIDC_KEY_ROTATE_DAYS`, and the old public key stays in the JWKS long enough
//! for the tokens it signed to expire.

use crate::domain::UnixMillis;
use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeySet, CoreRsaPrivateSigningKey};
use openidconnect::{JsonWebKeyId, PrivateSigningKey};
use sqlx::AnyPool;

/// RSA modulus size of new keys.
const RSA_BITS: usize = 2048;

/// The keys in the `oidc_keys` table.
#[derive(Clone, Debug)]
pub struct SigningKeys {
    pool: AnyPool,
}

impl SigningKeys {
    pub fn new(pool: AnyPool) -> Self {
        SigningKeys { pool }
    }

    /// Makes a key when there is none, or when the newest is older than `rotate_ms`.
    /// Returns whether it made one.
    pub async fn ensure(&self, now: UnixMillis, rotate_ms: i64) -> Result<bool, String> {
        let newest: Option<(i64,)> = sqlx::query_as("SELECT created_at FROM oidc_keys ORDER BY created_at DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| e.to_string())?;
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
            .map_err(|e| e.to_string())?;
        tracing::info!(kid, "made a new ID-token signing key");
        Ok(kid)
    }

    /// The key new tokens are signed with: the newest.
    pub async fn current(&self) -> Result<CoreRsaPrivateSigningKey, String> {
        let row: Option<(String, String)> = sqlx::query_as("SELECT kid, private_pem FROM oidc_keys ORDER BY created_at DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| e.to_string())?;
        let (kid, pem) = row.ok_or("no signing key")?;
        CoreRsaPrivateSigningKey::from_pem(&pem, Some(JsonWebKeyId::new(kid)))
    }

    /// The public keys that may have signed a token still alive: the newest, and every
    /// key replaced less than `keep_ms` ago.
    pub async fn jwks(&self, now: UnixMillis, keep_ms: i64) -> Result<CoreJsonWebKeySet, String> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT kid, private_pem, created_at FROM oidc_keys ORDER BY created_at DESC")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| e.to_string())?;
        let mut keys: Vec<CoreJsonWebKey> = Vec::new();
        // A key is needed while it signs (it is the newest) and for `keep_ms` after the
        // next one replaced it.
        let mut replaced_at: Option<UnixMillis> = None;
        for (kid, pem, created_at) in rows {
            if replaced_at.is_none_or(|r| now.since(r) < keep_ms) {
                let key = CoreRsaPrivateSigningKey::from_pem(&pem, Some(JsonWebKeyId::new(kid)))?;
                keys.push(key.as_verification_key());
            }
            replaced_at = Some(UnixMillis(created_at));
        }
        Ok(CoreJsonWebKeySet::new(keys))
    }
}
