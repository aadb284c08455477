//! The ID-token signing keys (RS256), kept in the database so every instance signs with
//! the same key and a restart logs nobody out. A key is made on first start; a new one
//! after `OIDC_KEY_ROTATE_DAYS`, and the old public key stays in the JWKS long enough
//! for the tokens it signed to expire.
//!
//! Parsed keys are kept in memory and re-read from the database every [`RELOAD`]. A new
//! key is published at once but signs only once it is [`PUBLISH_AHEAD`] old, so every
//! instance's JWKS lists a key before any instance signs with it.
//!
//! At rest (security review #12): with `OIDC_KEY_FILE` the private key is stored sealed
//! (AES-256-GCM under SHA-256 of the file, the key id as associated data, so a row cannot
//! be moved to another id); a plaintext key found at start is sealed then. A key that no
//! longer signs keeps only its public JWK ([`SigningKeys::retire`]), and is deleted once
//! nothing it signed can still be presented.

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
pub const PUBLISH_AHEAD: Duration = Duration::from_secs(2 * RELOAD.as_secs());

/// One key, parsed. `signing` is `None` once the key is retired.
struct Key {
    kid: String,
    created_at: UnixMillis,
    signing: Option<Arc<CoreRsaPrivateSigningKey>>,
    public: CoreJsonWebKey,
}

/// How a sealed key is stored: `enc:v1:` and base64 of nonce ‖ ciphertext ‖ tag.
const SEALED: &str = "enc:v1:";

/// The key that seals the signing keys at rest (from `OIDC_KEY_FILE`).
pub struct KeySeal(ring::aead::LessSafeKey);

impl std::fmt::Debug for KeySeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySeal(..)")
    }
}

impl KeySeal {
    /// From the file's bytes (at least 32: it should hold random bytes, e.g. `openssl rand 32`).
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Self, String> {
        use sha2::Digest as _;
        if bytes.len() < 32 {
            return Err("OIDC_KEY_FILE must hold at least 32 random bytes (e.g. `openssl rand -out FILE 32`)".into());
        }
        let key = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &sha2::Sha256::digest(bytes))
            .map_err(|_| "OIDC_KEY_FILE: no AES-256 key".to_string())?;
        Ok(KeySeal(ring::aead::LessSafeKey::new(key)))
    }

    /// `pem` sealed for the key `kid`.
    fn seal(&self, kid: &str, pem: &str) -> Result<String, KeyError> {
        use base64::Engine as _;
        use ring::rand::SecureRandom as _;
        let mut nonce = [0u8; 12];
        ring::rand::SystemRandom::new().fill(&mut nonce).map_err(|_| KeyError::Key("no randomness".into()))?;
        let mut data = pem.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(ring::aead::Nonce::assume_unique_for_key(nonce), ring::aead::Aad::from(kid.as_bytes()), &mut data)
            .map_err(|_| KeyError::Key("sealing failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend(data);
        Ok(format!("{SEALED}{}", base64::engine::general_purpose::STANDARD.encode(out)))
    }

    /// The PEM sealed in `stored` for the key `kid`.
    fn open(&self, kid: &str, stored: &str) -> Result<String, KeyError> {
        use base64::Engine as _;
        let wrong = || KeyError::Seal(format!("signing key {kid}: cannot be opened with OIDC_KEY_FILE (another file sealed it?)"));
        let bytes = base64::engine::general_purpose::STANDARD.decode(stored.trim_start_matches(SEALED)).map_err(|_| wrong())?;
        if bytes.len() < 12 + 16 {
            return Err(wrong());
        }
        let (nonce, sealed) = bytes.split_at(12);
        let nonce = ring::aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
        let mut sealed = sealed.to_vec();
        let pem = self.0.open_in_place(nonce, ring::aead::Aad::from(kid.as_bytes()), &mut sealed).map_err(|_| wrong())?;
        String::from_utf8(pem.to_vec()).map_err(|_| wrong())
    }
}

/// The keys, newest first, and when they were read.
type Loaded = (Instant, Arc<Vec<Key>>);

/// The keys in the `oidc_keys` table.
#[derive(Clone)]
pub struct SigningKeys {
    pool: Db,
    reload: Duration,
    loaded: Arc<Mutex<Option<Loaded>>>,
    seal: Option<Arc<KeySeal>>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys").field("reload", &self.reload).finish_non_exhaustive()
    }
}

/// Why the signing keys could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The database (start-up: cannot open the database, exit 1).
    #[error("signing keys' table: {0}")]
    Store(#[from] sqlx::Error),
    /// A sealed key without `OIDC_KEY_FILE`, or with another file (a configuration problem).
    #[error("{0}")]
    Seal(String),
    /// A key that does not parse or cannot be made.
    #[error("signing key: {0}")]
    Key(String),
}

impl SigningKeys {
    pub fn new(pool: Db) -> Self {
        Self::reloading_every(pool, RELOAD)
    }

    /// Keys re-read every `reload` (tests use a short one).
    pub fn reloading_every(pool: Db, reload: Duration) -> Self {
        SigningKeys { pool, reload, loaded: Arc::default(), seal: None }
    }

    /// Keys stored sealed with `seal` (`OIDC_KEY_FILE`).
    pub fn sealed_with(self, seal: KeySeal) -> Self {
        SigningKeys { seal: Some(Arc::new(seal)), ..self }
    }

    /// Seals every key stored in plaintext (a key file was set after they were made).
    /// Returns how many.
    pub async fn seal_plaintext(&self) -> Result<u64, KeyError> {
        let Some(seal) = &self.seal else { return Ok(0) };
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT kid, private_pem FROM oidc_keys WHERE private_pem LIKE '-----BEGIN%'").fetch_all(&self.pool).await?;
        let mut n = 0;
        for (kid, pem) in rows {
            sqlx::query("UPDATE oidc_keys SET private_pem = $2 WHERE kid = $1 AND private_pem = $3")
                .bind(&kid)
                .bind(seal.seal(&kid, &pem)?)
                .bind(&pem)
                .execute(&self.pool)
                .await?;
            n += 1;
        }
        if n > 0 {
            tracing::info!(keys = n, "sealed the ID-token signing keys with OIDC_KEY_FILE");
        }
        Ok(n)
    }

    /// Retires what no longer signs: a key whose successor has signed for a while keeps
    /// only its public JWK (its private part is erased), and a key replaced more than
    /// `keep_public_ms` ago (nothing it signed can still be presented: tokens, and logout
    /// hints no older than a login) is deleted. Returns (erased, deleted).
    pub async fn retire(&self, now: UnixMillis, keep_public: Duration) -> Result<(u64, u64), KeyError> {
        let keys = self.keys().await?;
        let (mut erased, mut deleted) = (0, 0);
        // `keys` is newest first: each key's successor is the one before it.
        for pair in keys.windows(2) {
            let (successor, key) = (&pair[0], &pair[1]);
            let replaced_at = successor.created_at.plus(PUBLISH_AHEAD);
            if now < replaced_at {
                continue;
            }
            if now.since(replaced_at) > keep_public {
                deleted += sqlx::query("DELETE FROM oidc_keys WHERE kid = $1").bind(&key.kid).execute(&self.pool).await?.rows_affected();
            } else if key.signing.is_some() {
                let public = serde_json::to_string(&key.public).map_err(|e| KeyError::Key(e.to_string()))?;
                erased += sqlx::query("UPDATE oidc_keys SET private_pem = '', public_jwk = $2 WHERE kid = $1")
                    .bind(&key.kid)
                    .bind(public)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
            }
        }
        if erased + deleted > 0 {
            *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = None;
            tracing::info!(erased, deleted, "retired ID-token signing keys");
        }
        Ok((erased, deleted))
    }

    /// Makes a key when there is none, or when the newest is older than `rotate`.
    /// Returns whether it made one.
    pub async fn ensure(&self, now: UnixMillis, rotate: Duration) -> Result<bool, KeyError> {
        let newest: Option<(i64,)> =
            sqlx::query_as("SELECT created_at FROM oidc_keys ORDER BY created_at DESC LIMIT 1").fetch_optional(&self.pool).await?;
        if newest.is_some_and(|(at,)| now.since(UnixMillis(at)) < rotate) {
            return Ok(false);
        }
        self.rotate(now).await?;
        Ok(true)
    }

    /// Makes a new signing key now; the previous ones stay published.
    pub async fn rotate(&self, now: UnixMillis) -> Result<String, KeyError> {
        let pem = tokio::task::spawn_blocking(|| {
            use rsa::pkcs1::EncodeRsaPrivateKey as _;
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS).map_err(|e| KeyError::Key(e.to_string()))?;
            key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).map(|p| p.to_string()).map_err(|e| KeyError::Key(e.to_string()))
        })
        .await
        .map_err(|e| KeyError::Key(e.to_string()))??;
        let kid = crate::server::tokens::random_token(12);
        let stored = match &self.seal {
            Some(seal) => seal.seal(&kid, &pem)?,
            None => pem,
        };
        sqlx::query("INSERT INTO oidc_keys (kid, private_pem, created_at) VALUES ($1, $2, $3)")
            .bind(&kid)
            .bind(stored)
            .bind(now)
            .execute(&self.pool)
            .await?;
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = None;
        tracing::info!(kid, "made a new ID-token signing key");
        Ok(kid)
    }

    /// Every key, newest first: from memory, or read and parsed when that is older
    /// than the reload interval.
    async fn keys(&self) -> Result<Arc<Vec<Key>>, KeyError> {
        if let Some((at, keys)) = &*self.loaded.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < self.reload
        {
            return Ok(keys.clone());
        }
        type Row = (String, String, Option<String>, i64);
        let rows: Vec<Row> = sqlx::query_as("SELECT kid, private_pem, public_jwk, created_at FROM oidc_keys ORDER BY created_at DESC")
            .fetch_all(&self.pool)
            .await?;
        let keys = rows.into_iter().map(|row| self.parse(row)).collect::<Result<Vec<_>, KeyError>>()?;
        let keys = Arc::new(keys);
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), keys.clone()));
        Ok(keys)
    }

    /// One stored key: sealed, plaintext, or retired (public only).
    fn parse(&self, (kid, private, public, created_at): (String, String, Option<String>, i64)) -> Result<Key, KeyError> {
        let created_at = UnixMillis(created_at);
        if private.is_empty() {
            let public: CoreJsonWebKey =
                serde_json::from_str(public.as_deref().unwrap_or("")).map_err(|e| KeyError::Key(format!("retired key {kid}: {e}")))?;
            return Ok(Key { kid, created_at, signing: None, public });
        }
        let pem = if private.starts_with(SEALED) {
            let seal = self
                .seal
                .as_ref()
                .ok_or_else(|| KeyError::Seal(format!("signing key {kid} is sealed: OIDC_KEY_FILE is needed to read it")))?;
            seal.open(&kid, &private)?
        } else {
            private
        };
        let signing = CoreRsaPrivateSigningKey::from_pem(&pem, Some(JsonWebKeyId::new(kid.clone()))).map_err(KeyError::Key)?;
        Ok(Key { kid, created_at, public: signing.as_verification_key(), signing: Some(Arc::new(signing)) })
    }

    /// The key new tokens are signed with: the newest that has been published for
    /// [`PUBLISH_AHEAD`], or the oldest that can sign when none has (the first start).
    pub async fn current(&self, now: UnixMillis) -> Result<Arc<CoreRsaPrivateSigningKey>, KeyError> {
        let keys = self.keys().await?;
        let signers = || keys.iter().filter_map(|k| k.signing.as_ref().map(|s| (k, s)));
        let (_, key) = signers()
            .find(|(k, _)| now.since(k.created_at) >= PUBLISH_AHEAD)
            .or_else(|| signers().next_back())
            .ok_or_else(|| KeyError::Key("no signing key".into()))?;
        Ok(key.clone())
    }

    /// The public keys that may have signed a token still alive: every key not yet
    /// replaced by a signing successor, and every key whose successor began signing
    /// less than `keep_ms` ago.
    pub async fn jwks(&self, now: UnixMillis, keep: Duration) -> Result<CoreJsonWebKeySet, KeyError> {
        let keys = self.keys().await?;
        let mut published: Vec<CoreJsonWebKey> = Vec::new();
        // When the next newer key took over signing.
        let mut replaced_at: Option<UnixMillis> = None;
        for k in keys.iter() {
            if replaced_at.is_none_or(|r| now.since(r) < keep) {
                published.push(k.public.clone());
            }
            replaced_at = Some(k.created_at.plus(PUBLISH_AHEAD));
        }
        Ok(CoreJsonWebKeySet::new(published))
    }
}
