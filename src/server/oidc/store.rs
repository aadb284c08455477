//! The provider's tables: pending authorization requests (while the person scans),
//! one-time codes and access tokens, codes and tokens by their SHA-256 only. Every SQL
//! statement of the provider is here; the handlers speak in these types.

use super::request::AuthorizeRequest;
use crate::domain::{UnixMillis, UserId};
use crate::server::db::Db;
use crate::server::session::SessionKey;
use crate::server::tokens::TokenHash;
use std::time::Duration;

/// A pending authorization request and the earliest login it accepts.
#[derive(Clone, Debug)]
pub struct PendingRequest {
    pub request: AuthorizeRequest,
    pub not_before: UnixMillis,
    pub expires_at: UnixMillis,
}

/// A code as issued: to whom, for which client and redirect URI, bound to which PKCE
/// challenge and nonce, with which scopes.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub user_id: UserId,
    pub auth_time: i64,
    pub scope: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// The stored key of the browser session that authorized it.
    pub session_key: Option<SessionKey>,
}

/// How an exchange of a code ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Redeemed {
    /// This exchange marked the code used and stored the access token, in one transaction.
    Issued,
    /// Another exchange had marked it first: what that one issued is revoked.
    AlreadyUsed { revoked: u64 },
}

/// The most pending authorization requests one browser keeps (security review #2): a
/// person rarely has more than a few sign-ins under way; a script that mints them gets
/// its oldest forgotten, not the table filled. Cookie-less callers are bounded by the
/// per-IP rate limit instead.
pub const MAX_PENDING_PER_BROWSER: usize = 10;

/// The `oidc_requests`, `oidc_codes` and `oidc_tokens` tables.
#[derive(Clone, Debug)]
pub struct OidcStore {
    db: Db,
}

impl OidcStore {
    pub fn new(db: Db) -> Self {
        OidcStore { db }
    }

    /// Keeps `req` under `id` until `expires_at`. A browser (its binding key) keeps at most
    /// [`MAX_PENDING_PER_BROWSER`] pending requests: its oldest beyond go.
    pub async fn save_request(
        &self,
        id: &str,
        req: &AuthorizeRequest,
        not_before: UnixMillis,
        expires_at: UnixMillis,
        browser: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let params = serde_json::to_string(req).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        if let Some(key) = browser {
            let mine: Vec<(String,)> = sqlx::query_as("SELECT id FROM oidc_requests WHERE browser_key = $1 ORDER BY expires_at DESC, id")
                .bind(key)
                .fetch_all(&self.db)
                .await?;
            for (old,) in mine.iter().skip(MAX_PENDING_PER_BROWSER - 1) {
                sqlx::query("DELETE FROM oidc_requests WHERE id = $1").bind(old).execute(&self.db).await?;
            }
        }
        sqlx::query(
            "INSERT INTO oidc_requests (id, client_id, params, not_before, expires_at, browser_key) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(&req.client_id)
        .bind(params)
        .bind(not_before)
        .bind(expires_at)
        .bind(browser)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// The pending request `id`, expired or not.
    pub async fn request(&self, id: &str) -> Result<Option<PendingRequest>, sqlx::Error> {
        let row: Option<(String, i64, i64)> = sqlx::query_as("SELECT params, not_before, expires_at FROM oidc_requests WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db)
            .await?;
        let Some((params, not_before, expires_at)) = row else { return Ok(None) };
        let request = serde_json::from_str(&params).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        Ok(Some(PendingRequest { request, not_before: UnixMillis(not_before), expires_at: UnixMillis(expires_at) }))
    }

    /// The client of the pending request `id`.
    pub async fn request_client(&self, id: &str) -> Result<Option<String>, sqlx::Error> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT client_id FROM oidc_requests WHERE id = $1").bind(id).fetch_optional(&self.db).await?;
        Ok(row.map(|r| r.0))
    }

    /// Forgets the pending request `id` (answered).
    pub async fn delete_request(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM oidc_requests WHERE id = $1").bind(id).execute(&self.db).await?;
        Ok(())
    }

    /// Stores a code (by its hash) for `req`'s client, for `user` who logged in at `auth_time`.
    pub async fn save_code(
        &self,
        code: &TokenHash,
        req: &AuthorizeRequest,
        user: UserId,
        auth_time: UnixMillis,
        session: Option<&SessionKey>,
        expires_at: UnixMillis,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO oidc_codes (code_hash, client_id, redirect_uri, code_challenge, nonce, user_id, auth_time, scope, expires_at, session_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(code.as_str())
        .bind(&req.client_id)
        .bind(&req.redirect_uri)
        .bind(req.code_challenge.clone())
        .bind(req.nonce.clone())
        .bind(user)
        .bind(auth_time)
        .bind(&req.scope)
        .bind(expires_at)
        .bind(session)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// The code whose hash is `code`.
    pub async fn code(&self, code: &TokenHash) -> Result<Option<CodeGrant>, sqlx::Error> {
        sqlx::query_as(
            "SELECT client_id, redirect_uri, code_challenge, nonce, user_id, auth_time, scope, expires_at, used_at, session_key \
             FROM oidc_codes WHERE code_hash = $1",
        )
        .bind(code.as_str())
        .fetch_optional(&self.db)
        .await
    }

    /// Revokes whatever the exchange of `code` issued.
    pub async fn revoke_code_tokens(&self, code: &TokenHash) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query("DELETE FROM oidc_tokens WHERE code_hash = $1").bind(code.as_str()).execute(&self.db).await?.rows_affected())
    }

    /// Redeems `code` once: marks it used and stores the access token `access` in one
    /// transaction, so that a racing second exchange either finds the code unused (and
    /// loses the mark) or finds the token stored (and revokes it).
    pub async fn redeem(
        &self,
        code: &TokenHash,
        grant: &CodeGrant,
        access: &TokenHash,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> Result<Redeemed, sqlx::Error> {
        let mut conn = self.db.acquire().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let marked = sqlx::query("UPDATE oidc_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL")
            .bind(code.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if marked.rows_affected() != 1 {
            tx.rollback().await?;
            drop(conn);
            return Ok(Redeemed::AlreadyUsed { revoked: self.revoke_code_tokens(code).await? });
        }
        sqlx::query(
            "INSERT INTO oidc_tokens (token_hash, client_id, user_id, scope, code_hash, expires_at, session_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(access.as_str())
        .bind(&grant.client_id)
        .bind(grant.user_id)
        .bind(&grant.scope)
        .bind(code.as_str())
        .bind(expires_at)
        .bind(grant.session_key.clone())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Redeemed::Issued)
    }

    /// Revokes what the browser session stored under `session` authorized (its logout).
    pub async fn revoke_session(&self, session: &SessionKey) -> Result<u64, sqlx::Error> {
        sqlx::query("DELETE FROM oidc_codes WHERE session_key = $1 AND used_at IS NULL").bind(session).execute(&self.db).await?;
        Ok(sqlx::query("DELETE FROM oidc_tokens WHERE session_key = $1").bind(session).execute(&self.db).await?.rows_affected())
    }

    /// The clients holding live tokens that the browser session stored under `session`
    /// authorized.
    pub async fn session_clients(&self, session: &SessionKey, now: UnixMillis) -> Result<Vec<String>, sqlx::Error> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT DISTINCT client_id FROM oidc_tokens WHERE session_key = $1 AND expires_at > $2 ORDER BY client_id")
                .bind(session)
                .bind(now)
                .fetch_all(&self.db)
                .await?;
        Ok(rows.into_iter().map(|(c,)| c).collect())
    }

    /// Revokes what `user`'s sessions other than `keep` authorized (退出其他设备).
    pub async fn revoke_other_sessions(&self, user: UserId, keep: &SessionKey) -> Result<u64, sqlx::Error> {
        sqlx::query("DELETE FROM oidc_codes WHERE user_id = $1 AND (session_key IS NULL OR session_key <> $2) AND used_at IS NULL")
            .bind(user)
            .bind(keep)
            .execute(&self.db)
            .await?;
        Ok(sqlx::query("DELETE FROM oidc_tokens WHERE user_id = $1 AND (session_key IS NULL OR session_key <> $2)")
            .bind(user)
            .bind(keep)
            .execute(&self.db)
            .await?
            .rows_affected())
    }

    /// RFC 7009: revokes the access token whose hash is `token` if `client` holds it.
    pub async fn revoke_token(&self, token: &TokenHash, client: &str) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query("DELETE FROM oidc_tokens WHERE token_hash = $1 AND client_id = $2")
            .bind(token.as_str())
            .bind(client)
            .execute(&self.db)
            .await?
            .rows_affected())
    }

    /// Whether `user` allowed `client` to sign them in without asking.
    pub async fn has_consent(&self, user: UserId, client: &str) -> Result<bool, sqlx::Error> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT at FROM oidc_consents WHERE user_id = $1 AND client_id = $2")
            .bind(user)
            .bind(client)
            .fetch_optional(&self.db)
            .await?;
        Ok(row.is_some())
    }

    /// Records that `user` allowed `client`.
    pub async fn grant_consent(&self, user: UserId, client: &str, now: UnixMillis) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO oidc_consents (user_id, client_id, at) VALUES ($1, $2, $3) ON CONFLICT (user_id, client_id) DO NOTHING")
            .bind(user)
            .bind(client)
            .bind(now)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// The clients `user` allowed, with when.
    pub async fn consents(&self, user: UserId) -> Result<Vec<(String, UnixMillis)>, sqlx::Error> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT client_id, at FROM oidc_consents WHERE user_id = $1 ORDER BY at").bind(user).fetch_all(&self.db).await?;
        Ok(rows.into_iter().map(|(c, at)| (c, UnixMillis(at))).collect())
    }

    /// Withdraws `user`'s consent to `client`, and what the client holds for them.
    pub async fn revoke_consent(&self, user: UserId, client: &str) -> Result<bool, sqlx::Error> {
        let gone = sqlx::query("DELETE FROM oidc_consents WHERE user_id = $1 AND client_id = $2")
            .bind(user)
            .bind(client)
            .execute(&self.db)
            .await?;
        sqlx::query("DELETE FROM oidc_tokens WHERE user_id = $1 AND client_id = $2").bind(user).bind(client).execute(&self.db).await?;
        Ok(gone.rows_affected() == 1)
    }

    /// Revokes every token of `user` and every code not yet exchanged (disabled).
    pub async fn revoke_user(&self, user: UserId) -> Result<u64, sqlx::Error> {
        let tokens = sqlx::query("DELETE FROM oidc_tokens WHERE user_id = $1").bind(user).execute(&self.db).await?.rows_affected();
        sqlx::query("DELETE FROM oidc_codes WHERE user_id = $1 AND used_at IS NULL").bind(user).execute(&self.db).await?;
        Ok(tokens)
    }

    /// The user, scope and client of the access token whose hash is `token`, while it lives.
    pub async fn token(&self, token: &TokenHash, now: UnixMillis) -> Result<Option<(UserId, String, String)>, sqlx::Error> {
        let row: Option<(UserId, String, String, i64)> =
            sqlx::query_as("SELECT user_id, scope, client_id, expires_at FROM oidc_tokens WHERE token_hash = $1")
                .bind(token.as_str())
                .fetch_optional(&self.db)
                .await?;
        Ok(row.filter(|(_, _, _, exp)| now < UnixMillis(*exp)).map(|(user, scope, client, _)| (user, scope, client)))
    }

    /// Forgets abandoned requests, codes `keep_codes_ms` past their expiry (so a late
    /// replay is still recognised, and revokes), and expired tokens.
    pub async fn purge(&self, now: UnixMillis, keep_codes: Duration) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM oidc_requests WHERE expires_at < $1").bind(now).execute(&self.db).await?;
        sqlx::query("DELETE FROM oidc_codes WHERE expires_at < $1").bind(now.minus(keep_codes)).execute(&self.db).await?;
        sqlx::query("DELETE FROM oidc_tokens WHERE expires_at < $1").bind(now).execute(&self.db).await?;
        Ok(())
    }
}
